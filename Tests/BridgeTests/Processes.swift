import Foundation
import Sockets
import TestSupport

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
        try await launchUnmasked(process)
        // The bridge prints its port on its first line: "Modbus TCP on port N. ..."
        let text = await offPool {
            var text = ""
            let deadline = ContinuousClock.now + .seconds(20)
            var ready = [pollfd(fd: output.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)]
            while !text.contains("\n"), pollDescriptors(&ready, timeout: deadline - .now) == 1 {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }
        guard let line = text.split(separator: "\n").first, let port = line.split(separator: " ").dropFirst(4).first
            .flatMap({ UInt16($0.trimmingCharacters(in: .punctuationCharacters)) })
        else {
            process.terminate()
            throw ProcessError("the bridge did not print its port: \(text)")
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
