import Foundation
import Sockets
import Threading
import Locking

/// What a program that ran to its end left behind.
struct ProcessOutcome: Sendable {
    let status: Int32
    let output: String
    let errors: String

    /// Standard output then standard error, for checks that do not care which stream said it.
    var everything: String { output + errors }
}

/// Runs `command` to its end; coreutils' `timeout` kills it after `timeout` seconds.
///
/// Waiting for a process blocks its thread, so the wait happens on a thread of its own: on the
/// cooperative pool (two threads on a 2-core machine) two such waits stall every other test.
/// The helpers of this file are async for that reason; keep the blocking parts private.
func runToEnd(_ command: [String], timeout: Int = 60) async throws -> ProcessOutcome {
    try await offPool { Result { try blockingRun(command, timeout: timeout) } }.get()
}

/// Runs the built `sec1000` executable to its end.
func runSEC1000(_ arguments: [String], timeout: Int = 60) async throws -> ProcessOutcome {
    try await runToEnd([try sec1000Executable().path] + arguments, timeout: timeout)
}

private func blockingRun(_ command: [String], timeout: Int) throws -> ProcessOutcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    process.arguments = ["\(timeout)"] + command
    let output = Pipe(), errors = Pipe()
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    // Both pipes are drained at once, so a chatty stream cannot fill its pipe and stall the child.
    let errorData = Locked(Data())
    let errorReader = BlockingThread {
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        errorData.withLock { $0 = data }
    }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    errorReader.join()
    process.waitUntilExit()
    // Closed now, not when Foundation lets go of the Process, which on Linux may be never.
    try? output.fileHandleForReading.close()
    try? errors.fileHandleForReading.close()
    return ProcessOutcome(
        status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
        errors: String(decoding: errorData.withLock { $0 }, as: UTF8.self))
}

/// A `sec1000 bridge --simulate --capture` daemon on an ephemeral port, polling every second.
struct BridgeProcess: Sendable {
    let process: Process
    let port: UInt16

    /// Starts the daemon with `extra` options and waits (at most 20 s) until it prints its port.
    /// With `shell`, the daemon is started by `bash -c "SHELL; exec sec1000 ..."` (for `ulimit` and
    /// the like; the process is still the daemon's). Its standard error goes to `errors`, or to the
    /// file `errorFile`, or nowhere.
    /// `base` replaces the usual `bridge --simulate --capture ...` arguments.
    static func start(
        _ extra: [String] = [], base: [String]? = nil, shell: String? = nil, errors: Pipe? = nil, errorFile: URL? = nil
    ) async throws -> BridgeProcess {
        try await offPool { Result { try blockingStart(extra, base: base, shell: shell, errors: errors, errorFile: errorFile) } }.get()
    }

    private static func blockingStart(
        _ extra: [String], base: [String]?, shell: String?, errors: Pipe?, errorFile: URL?
    ) throws -> BridgeProcess {
        let process = Process()
        let arguments = (base ?? ["bridge", "--simulate", "--capture", "--listen", "127.0.0.1:0", "--interval", "1",
                                  "--min-gap", "0", "--log-level", "warning"]) + extra
        if let shell {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "\(shell); exec \"$0\" \"$@\"", try sec1000Executable().path] + arguments
        } else {
            process.executableURL = try sec1000Executable()
            process.arguments = arguments
        }
        let output = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        if let errors {
            process.standardError = errors
        } else if let errorFile {
            _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: errorFile)
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        // The bridge prints its port on its first line: "Modbus TCP on port N. ..."
        var text = ""
        let deadline = ContinuousClock.now + .seconds(20)
        var ready = [pollfd(fd: output.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)]
        while !text.contains("\n"), pollDescriptors(&ready, timeout: deadline - .now) == 1 {
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
        return BridgeProcess(process: process, port: port)
    }

    /// Whether the daemon exits within `seconds`.
    func exits(within seconds: Double) async -> Bool {
        await offPool { [process] in
            let deadline = Date.now.addingTimeInterval(seconds)
            while process.isRunning && Date.now < deadline { usleep(10_000) }
            return !process.isRunning
        }
    }

    /// Stops the daemon if it still runs (for `defer`).
    func stop() {
        if process.isRunning { process.interrupt(); process.terminate() }
    }
}
