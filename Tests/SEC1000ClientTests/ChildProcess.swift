#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Locking

struct ChildProcessError: Error, CustomStringConvertible {
    let description: String
}

/// The `sec1000` executable SwiftPM built beside this test binary (it is a dependency of the test
/// target, so `swift build --build-tests` builds it).
func sec1000Executable() throws -> URL {
    let testBinary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let executable = URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("sec1000")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw ChildProcessError(description: "no sec1000 executable at \(executable.path), beside the test binary \(testBinary)")
    }
    return executable
}

/// A running `sec1000` whose output is drained as it comes, so a full pipe can never stall it.
final class ChildProcess: Sendable {
    struct Outcome: Sendable {
        /// The exit code, or the signal number when `signalled`.
        let status: Int32
        let signalled: Bool
        let stdout: String
        let stderr: String

        var stderrLines: [Substring] { stderr.split(separator: "\n") }
    }

    /// Written by Foundation's termination handler and the pipe readers, on their own threads.
    private final class State: Sendable {
        let termination = Locked<(status: Int32, signalled: Bool)?>(nil)
        let output = Locked<[Data]>([Data(), Data()])
        let exited = DispatchSemaphore(value: 0)
        let drained = DispatchGroup()
    }

    let arguments: [String]
    let pid: Int32
    private let state = State()

    init(_ arguments: [String]) throws {
        self.arguments = arguments
        let process = Process()
        process.executableURL = try sec1000Executable()
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let pipes = [Pipe(), Pipe()]
        process.standardOutput = pipes[0]
        process.standardError = pipes[1]
        process.terminationHandler = { [state] process in
            state.termination.withLock { $0 = (process.terminationStatus, process.terminationReason == .uncaughtSignal) }
            state.exited.signal()
            // Foundation on Linux can keep a finished Process alive; the handler must not keep the
            // state (and its output) alive with it.
            process.terminationHandler = nil
        }
        try process.run()
        pid = process.processIdentifier
        for (index, pipe) in pipes.enumerated() {
            let reader = pipe.fileHandleForReading
            state.drained.enter()
            runBlocking { [state] in
                let data = reader.readDataToEndOfFile()
                state.output.withLock { $0[index] = data }
                state.drained.leave()
            }
        }
    }

    var hasExited: Bool { state.termination.withLock { $0 != nil } }

    /// Sends `signal` unless the process has already exited (its pid could be reused by then).
    func send(_ signal: Int32) {
        if !hasExited { kill(pid, signal) }
    }

    /// Waits for the exit; after `timeout` the process is killed and this throws.
    func outcome(timeout: Duration) async throws -> Outcome {
        let state = state
        let exitedInTime = await state.exited.wait(upTo: timeout)
        if !exitedInTime {
            send(SIGKILL)
            _ = await state.exited.wait(upTo: .seconds(5))
        }
        _ = await state.drained.wait(upTo: .seconds(5))
        let output = state.output.withLock { $0.map { String(decoding: $0, as: UTF8.self) } }
        guard exitedInTime, let termination = state.termination.withLock({ $0 }) else {
            throw ChildProcessError(description: """
                sec1000 \(arguments.joined(separator: " ")) did not exit within \(timeout); killed
                stdout: \(output[0])
                stderr: \(output[1])
                """)
        }
        return Outcome(status: termination.status, signalled: termination.signalled, stdout: output[0], stderr: output[1])
    }
}

/// Runs `sec1000` with `arguments` to completion, bounded by `timeout`.
func sec1000(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> ChildProcess.Outcome {
    try await ChildProcess(arguments).outcome(timeout: timeout)
}
