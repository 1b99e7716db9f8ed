import Foundation
import TestSupport
import Testing

/// The built `sec1000` executable and `mbpoll`, run as processes.
@Suite("The daemon and mbpoll as processes", .serialized, .timeLimit(.minutes(2)))
struct ProcessTests {
    @Test func daemonServesThenStopsCleanlyOnSIGTERM() async throws {
        let bridge = try await BridgeProcess.start()
        defer { bridge.stop() }
        let port = bridge.port
        try await waitUntil("a good poll behind the daemon", timeout: .seconds(20)) {
            await offPool { (try? ModbusClient(port: port))?.read(18, 4).values.map(int32s) } == [-351, 3386]
        }
        kill(bridge.process.processIdentifier, SIGTERM)
        #expect(await bridge.exits(within: 10))
        #expect(bridge.process.terminationReason == .exit)
        #expect(bridge.process.terminationStatus == 0)
        // Its sockets are closed: nothing listens on the port any more.
        #expect(await offPool { try? ModbusClient(port: port) } == nil)
    }

    @Test func sigintStopsItToo() async throws {
        let bridge = try await BridgeProcess.start()
        defer { bridge.stop() }
        let port = bridge.port
        try await waitUntil("the daemon to serve", timeout: .seconds(20)) {
            await offPool { (try? ModbusClient(port: port))?.read(200, 1).values } != nil
        }
        bridge.process.interrupt()
        #expect(await bridge.exits(within: 10))
        #expect(bridge.process.terminationStatus == 0)
    }

    /// mbpoll, installed by the test setup, reads the bridge; its printed values are checked.
    @Test func mbpollReadsEveryBlock() async throws {
        let mbpoll = "/usr/bin/mbpoll"
        try #require(FileManager.default.isExecutableFile(atPath: mbpoll), "mbpoll is installed by `make test`")
        let bridge = try await BridgeProcess.start()
        defer { bridge.stop() }
        let port = bridge.port
        try await waitUntil("a good poll", timeout: .seconds(20)) {
            await offPool { (try? ModbusClient(port: port))?.read(0, 2).values } != nil
        }
        func values(_ arguments: [String]) async throws -> [String: String] {
            let result = try await runToEnd([mbpoll, "-m", "tcp", "-p", "\(port)", "-1"] + arguments + ["127.0.0.1"])
            #expect(result.status == 0, "\(result.everything)")
            let output = result.output
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
        ["bridge", "--simulate", "--control-allow", "10.9.9.9/-0"],
        ["bridge", "--simulate", "--control-allow", "10.9.9.9/008"],
    ])
    func invalidOptionsExitWithUsageError(arguments: [String]) async throws {
        let result = try await runSEC1000(arguments)
        #expect(result.status == 64, "\(arguments): \(result.everything)")
        #expect(result.errors.contains("Error:"), "\(result.everything)")
    }
}
