#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Sockets
import TestSupport
import Testing

/// Running out of descriptors (issue 14, defect 4): an impossible `--max-connections` is refused at
/// start, and exhaustion at run time pauses accepting instead of spinning on EMFILE.
@Suite("Descriptor limit", .serialized, .timeLimit(.minutes(2)))
struct DescriptorLimitTests {
    @Test func aMaxConnectionsBeyondTheDescriptorLimitIsRefused() async throws {
        let outcome = try await runToEnd([
            "/bin/bash", "-c", "ulimit -n 64; exec \"$0\" \"$@\"", try sec1000Executable().path,
            "bridge", "--simulate", "--listen", "127.0.0.1:0", "--max-connections", "200",
        ], timeout: .seconds(20))
        #expect(outcome.status == 64)
        #expect(outcome.errors.contains("--max-connections 200 needs 234 file descriptors"), "\(outcome.errors)")
        #expect(outcome.errors.contains("Give --max-connections 30 or less"))
    }

    @Test func aSoftLimitIsRaisedToTheHardOne() async throws {
        // Soft 64 under a hard 1024: 200 connections fit once the soft limit is raised.
        let bridge = try await BridgeProcess.start(["--max-connections", "200"], shell: "ulimit -Sn 64; ulimit -Hn 1024")
        defer { bridge.stop() }
        let limits = try String(contentsOfFile: "/proc/\(bridge.process.processIdentifier)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        #expect(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first == "1024", "\(line)")
    }

    /// CPU seconds (user + system) the process `pid` has used, from /proc/PID/stat.
    static func cpuSeconds(of pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": field 3 is the state; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test func descriptorExhaustionPausesAcceptingAndServesAgainAfterwards() async throws {
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-emfile-\(getpid()).log")
        defer { try? FileManager.default.removeItem(at: errors) }
        // 28 connections fit in 64 (28 + 32 + 2 for the device), but 24 descriptors left open by the
        // parent take most of what the bridge keeps for itself: clients run it out of descriptors.
        let inherit = (3...26).map { "exec \($0)</dev/null" }.joined(separator: "; ")
        let bridge = try await BridgeProcess.start(
            ["--max-connections", "28", "--idle-timeout", "600", "--log-level", "info"],
            shell: "ulimit -n 64; \(inherit)", errorFile: errors)
        defer { bridge.stop() }
        let port = bridge.port
        let pid = bridge.process.processIdentifier
        let measured = await offPool { () -> (cpu: Double, held: Int)? in
            // 60 idle connections, twice what fits: the kernel queues those the bridge cannot take.
            let idle = (0..<60).compactMap { _ in Connection(port: port) }
            pace(.milliseconds(500))
            guard let before = Self.cpuSeconds(of: pid) else { return nil }
            // A measurement window: a bridge spinning on EMFILE burns a whole core in it.
            pace(.seconds(3))
            guard let after = Self.cpuSeconds(of: pid) else { return nil }
            return (after - before, idle.count)
        }
        let (cpu, held) = try #require(measured)
        print("[emfile] \(held) idle connections held; bridge CPU over 3 s: \(cpu) s")
        #expect(held == 60)
        #expect(cpu < 0.5, "no busy loop: \(cpu) s of CPU in 3 s")
        // The idle connections are gone (closed at the end of the block above): a new master is served.
        let served = await offPool { () -> Bool in
            blockingWait(timeout: .seconds(10)) {
                guard let client = try? ModbusClient(port: port) else { return false }
                return client.read(0, 28).values != nil
            }
        }
        #expect(served, "a new master is served once the load has gone")
        let log = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        let lines = log.split(separator: "\n").filter { $0.contains("accept") || $0.contains("descriptors") }
        #expect(lines.count <= 5, "the pauses are logged once, then counted: \(lines.count) lines")
    }
}
