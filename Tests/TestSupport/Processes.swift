#if canImport(Glibc)
import Glibc
#endif
import CSocketCalls
import Foundation
import Locking
import Threading

/// A child process that could not be started, or did not end in time.
public struct ProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a program that ran to its end left behind.
public struct ProcessOutcome: Sendable {
    /// The exit code, or the signal number when `signalled`.
    public let status: Int32
    public let signalled: Bool
    public let output: String
    public let errors: String

    /// Standard output then standard error, for checks that do not care which stream said it.
    public var everything: String { output + errors }
    public var errorLines: [Substring] { errors.split(separator: "\n") }
}

/// The `sec1000` executable SwiftPM built beside this test binary (test targets depend on it, so
/// `swift build --build-tests` builds it).
public func sec1000Executable() throws -> URL {
    let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let executable = URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("sec1000")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw ProcessError("no sec1000 executable at \(executable.path), beside the test binary \(testBinary); run `swift build` first")
    }
    return executable
}

/// Runs `command` (found on PATH) to its end, at most `timeout`; after that it is killed and this throws.
public func runToEnd(_ command: [String], timeout: Duration = .seconds(60)) async throws -> ProcessOutcome {
    try await ChildProcess(command).outcome(timeout: timeout)
}

/// Runs the built `sec1000` executable to its end, at most `timeout`.
public func runSEC1000(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> ProcessOutcome {
    try await runToEnd([try sec1000Executable().path] + arguments, timeout: timeout)
}

/// The one process runner of the tests: a running program whose standard output and error are
/// drained as they come (a full pipe can never stall it), in a process group of its own.
///
/// Spawned with an empty signal mask and default signal actions. A child inherits the mask of the
/// thread that spawns it, and Swift's pool threads (and threads they create) block nearly every
/// signal: a child spawned from them ignores SIGTERM, SIGINT and its own SIGALRM, so neither
/// `timeout N` nor the program's own alarms could end it.
public final class ChildProcess: Sendable {
    public let command: [String]
    public let pid: pid_t
    /// Set once the child is reaped; under the lock, so no signal goes to a reaped (reusable) pid.
    private let termination = Locked<(status: Int32, signalled: Bool)?>(nil)
    /// Standard output and error so far, and how many of the two readers have met end of file.
    private let streams = Locked<(data: [[UInt8]], ended: Int)>(([[], []], 0))

    /// Starts `command`; its first element is a path or a name looked up on PATH. Standard input is
    /// /dev/null.
    public init(_ command: [String]) throws {
        precondition(!command.isEmpty, "a command needs a program")
        self.command = command
        var pipes: [[Int32]] = [[-1, -1], [-1, -1]]
        for index in pipes.indices {
            guard pipe2(&pipes[index], O_CLOEXEC) == 0 else { throw ProcessError("pipe2: \(String(cString: strerror(errno)))") }
        }
        defer { for end in pipes.joined() where end >= 0 { close(end) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipes[0][1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes[1][1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        // Ignored signals stay ignored across exec (SIGPIPE in this process): back to default.
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        // A group of its own, so a timeout also ends what a shell started, which holds the pipes.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var arguments = command.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawnp(&child, command[0], &actions, &attributes, &arguments, environ)
        guard status == 0 else {
            throw ProcessError("cannot start \(command.joined(separator: " ")): \(String(cString: strerror(status)))")
        }
        pid = child

        for index in pipes.indices {
            let descriptor = pipes[index][0]
            pipes[index][0] = -1  // the reader closes it
            close(pipes[index][1])
            pipes[index][1] = -1
            BlockingThread.detached { [streams] in
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { break }
                    streams.withLock { $0.data[index] += buffer[0..<count] }
                }
                close(descriptor)
                streams.withLock { $0.ended += 1 }
            }
        }
    }

    /// Whether the child has ended (reaping it if so).
    public var hasExited: Bool { reap() != nil }

    /// Sends `signal` to the child unless it has been reaped (its pid could be reused by then).
    public func send(_ signal: Int32) {
        termination.withLock { if $0 == nil { _ = kill(pid, signal) } }
    }

    /// Waits (off the pool) for the child to end, at most `timeout`. Past that, its whole process
    /// group is killed and this throws with what it printed.
    public func outcome(timeout: Duration) async throws -> ProcessOutcome {
        let endedInTime = await waitForEnd(within: timeout)
        if !endedInTime {
            termination.withLock { if $0 == nil { _ = kill(-pid, SIGKILL) } }
            _ = await waitForEnd(within: .seconds(5))
        }
        // The pipes close when the child (and anything it started) has gone; a straggler holding
        // them does not hold the test.
        _ = await waitUntil(timeout: .seconds(5)) { self.streams.withLock { $0.ended == 2 } }
        let text = streams.withLock { $0.data.map { String(decoding: $0, as: UTF8.self) } }
        guard endedInTime, let ended = termination.withLock({ $0 }) else {
            throw ProcessError("""
                \(command.joined(separator: " ")) did not end within \(timeout); killed
                stdout: \(text[0])
                stderr: \(text[1])
                """)
        }
        return ProcessOutcome(status: ended.status, signalled: ended.signalled, output: text[0], errors: text[1])
    }

    private func waitForEnd(within timeout: Duration) async -> Bool {
        await offPool { [self] in
            let deadline = ContinuousClock.now + timeout
            while reap() == nil {
                guard ContinuousClock.now < deadline else { return false }
                usleep(2_000)
            }
            return true
        }
    }

    /// Collects the child's end if it has come, without waiting.
    private func reap() -> (status: Int32, signalled: Bool)? {
        termination.withLock { termination in
            if termination == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    // WIFSIGNALED and friends are macros Swift does not import.
                    let signal = status & 0x7F
                    termination = signal == 0 ? ((status >> 8) & 0xFF, false) : (signal, true)
                }
            }
            return termination
        }
    }
}

/// Starts a Foundation `process` from a thread whose signal mask is empty, for children that are
/// driven through `Process` (see `ChildProcess` for why the mask matters).
public func launchUnmasked(_ process: Process) async throws {
    try await offPool { () -> Result<Void, any Error> in
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        return Result { try process.run() }
    }.get()
}
