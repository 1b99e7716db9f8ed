import Foundation
import Testing

/// The built `sec1000` executable and `mbpoll`, run as processes.
@Suite("The daemon and mbpoll as processes", .serialized, .timeLimit(.minutes(2)))
struct ProcessTests {
    /// Starts `sec1000 bridge --simulate --capture` on an ephemeral port; returns the process and its port.
    /// Blocks until the bridge prints its port: call it through `offPool`.
    func startBridge(_ extra: [String] = []) throws -> (Process, UInt16, Pipe) {
        let process = Process()
        process.executableURL = try sec1000Executable()
        process.arguments = ["bridge", "--simulate", "--capture", "--listen", "127.0.0.1:0", "--interval", "1",
                             "--min-gap", "0", "--log-level", "warning"] + extra
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The bridge prints its port on its first line: "Modbus TCP on port N. ..."
        var text = ""
        let deadline = Date.now.addingTimeInterval(20)
        while !text.contains("\n"), Date.now < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first, let port = line.split(separator: " ").dropFirst(4).first
            .flatMap({ UInt16($0.trimmingCharacters(in: .punctuationCharacters)) })
        else {
            process.terminate()
            throw ModbusClient.ClientError(message: "the bridge did not print its port: \(text)")
        }
        return (process, port, output)
    }

    /// Blocks until the process ends: call it through `offPool`.
    func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A bridge started off the cooperative pool.
    func started(_ extra: [String] = []) async throws -> (Process, UInt16, Pipe) {
        try await offPool { Result { try startBridge(extra) } }.get()
    }

    func waitForExit(_ process: Process, within seconds: Double) -> Bool {
        let deadline = Date.now.addingTimeInterval(seconds)
        while process.isRunning && Date.now < deadline { usleep(10_000) }
        return !process.isRunning
    }

    @Test func daemonServesThenStopsCleanlyOnSIGTERM() async throws {
        let (process, port, _) = try await started()
        defer { if process.isRunning { process.interrupt(); process.terminate() } }
        try await waitUntil("a good poll behind the daemon", timeout: .seconds(20)) {
            await offPool { (try? ModbusClient(port: port))?.read(18, 4).values.map(int32s) } == [-351, 3386]
        }
        kill(process.processIdentifier, SIGTERM)
        #expect(await offPool { waitForExit(process, within: 10) })
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        // Its sockets are closed: nothing listens on the port any more.
        #expect(await offPool { try? ModbusClient(port: port) } == nil)
    }

    @Test func sigintStopsItToo() async throws {
        let (process, port, _) = try await started()
        defer { if process.isRunning { process.terminate() } }
        try await waitUntil("the daemon to serve", timeout: .seconds(20)) {
            await offPool { (try? ModbusClient(port: port))?.read(200, 1).values } != nil
        }
        process.interrupt()
        #expect(await offPool { waitForExit(process, within: 10) })
        #expect(process.terminationStatus == 0)
    }

    /// mbpoll, installed by the test setup, reads the bridge; its printed values are checked.
    @Test func mbpollReadsEveryBlock() async throws {
        let mbpoll = "/usr/bin/mbpoll"
        try #require(FileManager.default.isExecutableFile(atPath: mbpoll), "mbpoll is installed by `make test`")
        let (process, port, _) = try await started()
        defer { if process.isRunning { process.terminate() } }
        try await waitUntil("a good poll", timeout: .seconds(20)) {
            await offPool { (try? ModbusClient(port: port))?.read(0, 2).values } != nil
        }
        func values(_ arguments: [String]) async throws -> [String: String] {
            let result = await offPool { try? run(mbpoll, ["-m", "tcp", "-p", "\(port)", "-1"] + arguments + ["127.0.0.1"]) }
            let (status, output) = try #require(result)
            #expect(status == 0, "\(output)")
            // Lines look like "[18]: \t-351" (floats: "[118]: \t-0.351").
            return Dictionary(output.split(separator: "\n").compactMap { line in
                guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return nil }
                let value = line[line.index(after: close)...].dropFirst().trimmingCharacters(in: .whitespaces)
                return (String(line[line.index(after: line.startIndex)..<close]), String(value.split(separator: " ")[0]))
            }, uniquingKeysWith: { $1 })
        }
        // 0-based integers from the holding registers: block A.
        let a = try await values(["-a", "1", "-0", "-r", "0", "-c", "14", "-t", "4:int", "-B"])
        #expect(a["0"] == "2410" && a["18"] == "-351" && a["20"] == "3386" && a["22"] == "3035" && a["26"] == "351")
        // 1-based floats from the input registers: block B (address 100 is reference 101).
        let b = try await values(["-a", "1", "-r", "101", "-c", "14", "-t", "3:float", "-B"])
        #expect(b["101"] == "241" && b["119"] == "-0.351" && b["121"] == "3.386")
        // 16-bit status registers: block C.
        let c = try await values(["-a", "1", "-0", "-r", "200", "-c", "10", "-t", "4"])
        #expect(c["200"] == "1" && c["206"] == "0" && c["209"] == "1")
        // Unit 255 reaches the first device.
        let unit255 = try await values(["-a", "255", "-0", "-r", "18", "-c", "1", "-t", "4:int", "-B"])
        #expect(unit255["18"] == "-351")
    }

    @Test(arguments: [
        ["bridge"],
        ["bridge", "--device", "10.0.0.1@0"],
        ["bridge", "--device", "10.0.0.1@300"],
        ["bridge", "--device", "10.0.0.1:99999"],
        ["bridge", "--device", "10.0.0.1", "--device", "10.0.0.2"],
        ["bridge", "--simulate", "--interval", "0"],
        ["bridge", "--simulate", "--interval", "10", "--stale-after", "5"],
        ["bridge", "--simulate", "--listen", "nonsense:port"],
        ["bridge", "--simulate", "--max-connections", "0"],
        ["bridge", "--simulate", "--grid-sign", "sideways"],
        ["bridge", "--simulate", "--hang-rate", "2"],
    ])
    func invalidOptionsExitWithUsageError(arguments: [String]) async throws {
        let executable = try sec1000Executable().path
        let result = await offPool { try? run(executable, arguments) }
        let (status, output) = try #require(result)
        #expect(status == 64, "\(arguments): \(output)")
        #expect(output.contains("Error:"), "\(output)")
    }
}
