#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestSupport
import Testing

/// The shared process runner, started from tasks on the cooperative pool. Those threads block
/// nearly every signal and a child inherits its spawner's mask: a runner that does not clear it
/// leaves `timeout N` and SIGTERM unable to end the child.
@Suite("process runner")
struct ProcessRunnerTests {
    /// The signals a process blocks, from /proc/PID/status (hex).
    static func blockedSignals(of pid: pid_t) -> String? {
        readProcFile("/proc/\(pid)/status").split(separator: "\n")
            .first { $0.hasPrefix("SigBlk:") }?.split(separator: "\t").last.map(String.init)
    }

    @Test func aChildStartedFromThePoolBlocksNoSignal() async throws {
        let child = try ChildProcess(["sleep", "30"])
        defer { child.send(SIGKILL) }
        #expect(Self.blockedSignals(of: child.pid) == "0000000000000000")
        // SIGTERM's default action ends it.
        child.send(SIGTERM)
        let outcome = try await child.outcome(timeout: .seconds(10))
        #expect(outcome.signalled && outcome.status == SIGTERM, "\(outcome)")
    }

    /// coreutils' `timeout 1 sleep 30` ends in about a second: its SIGTERM reaches `sleep`.
    @Test func aTimeoutWrapperEndsItsChild() async throws {
        let start = ContinuousClock.now
        let outcome = try await runToEnd(["timeout", "1", "sleep", "30"], timeout: .seconds(60))
        #expect(outcome.status == 124, "\(outcome)")
        #expect(start.elapsed < .seconds(10), "timeout's SIGTERM did not end sleep")
    }

    /// The runner's own timeout kills the child and says so, in about the time asked.
    @Test func theRunnersTimeoutEndsAChild() async throws {
        let start = ContinuousClock.now
        await #expect(throws: ProcessError.self) {
            try await runToEnd(["sleep", "30"], timeout: .seconds(1))
        }
        #expect(start.elapsed < .seconds(10), "the runner waited out the child")
    }
}
