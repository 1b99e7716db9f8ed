#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SEC1000Simulator
import Sockets
import Synchronization
import Testing

/// The long-running proofs of Docs/reliability.md: the device's view under load, the fault soak,
/// and hostile clients. They take minutes and measure latencies, so they run one at a time
/// (`.serialized`), and only when asked (`SEC1000_RELIABILITY=1`): `make reliability` runs them in
/// a release build of their own, `make sanitize` under the sanitizers. A plain `swift test` skips them.
@Suite(
    "Reliability", .serialized,
    .enabled(if: ReliabilityEnvironment.enabled, "set SEC1000_RELIABILITY=1, or run make reliability"))
struct Reliability {}

/// Knobs for the long modes, read from the environment, and what the run looks like.
enum ReliabilityEnvironment {
    /// Whether the reliability suites run (`SEC1000_RELIABILITY` set and not 0).
    static let enabled: Bool = ProcessInfo.processInfo.environment["SEC1000_RELIABILITY"].map { !$0.isEmpty && $0 != "0" } ?? false

    /// A positive integer from the environment, or `nil`.
    static func integer(_ name: String) -> Int? {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }

    /// Whether this process runs under AddressSanitizer or ThreadSanitizer (their runtimes export
    /// these symbols). Sanitized code runs several times slower: counts shrink and timing budgets widen.
    static let underSanitizer: Bool = dlsym(nil, "__tsan_init") != nil || dlsym(nil, "__asan_init") != nil

    /// Whether the code under test is optimized (`swift test -c release`, as `make reliability`
    /// runs these tests). The contract's latency figures are for the optimized build, as deployed;
    /// a debug build, several times slower, is held to looser budgets that still catch stalls.
    static let optimized: Bool = {
        #if DEBUG
        return false
        #else
        return true
        #endif
    }()

    /// Timing slack between two clocks of one machine (the device's send, the bridge's publish, a
    /// client's request): a task hop on a loaded two-core machine, more in a debug build, a lot
    /// more under a sanitizer.
    static var slack: Duration {
        underSanitizer ? .milliseconds(250) : optimized ? .milliseconds(40) : .milliseconds(100)
    }

    /// The p99 latency a well-behaved master must stay under while it is attacked: the contract's
    /// 10 ms in the optimized build.
    static var latencyBudget: Duration {
        underSanitizer ? .milliseconds(100) : optimized ? .milliseconds(10) : .milliseconds(25)
    }

    /// What the build is, for reports.
    static var build: String {
        underSanitizer ? "sanitized debug build" : optimized ? "release build" : "debug build"
    }
}

/// The simulator's seedable generator, so a failing fuzz or soak run can be replayed from its seed.
typealias SeededGenerator = SplitMix64

extension SplitMix64 {
    init(seed: UInt64) { self.init(state: seed == 0 ? 0x5EC1000 : seed) }

    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }
}

/// Latencies of one client, and their percentiles.
struct LatencyRecord: Sendable {
    private(set) var samples: [Duration] = []
    mutating func add(_ latency: Duration) { samples.append(latency) }
    mutating func merge(_ other: LatencyRecord) { samples += other.samples }
    var count: Int { samples.count }

    /// The `fraction` percentile (0.99 for p99), nearest rank.
    func percentile(_ fraction: Double) -> Duration {
        guard !samples.isEmpty else { return .zero }
        let sorted = samples.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    var maximum: Duration { samples.max() ?? .zero }
    var p50: Duration { percentile(0.5) }
    var p99: Duration { percentile(0.99) }
    var summary: String { "\(count) reads, p50 \(p50.milliseconds) ms, p99 \(p99.milliseconds) ms, max \(maximum.milliseconds) ms" }
}

extension Duration {
    /// Milliseconds with two decimals, for reports.
    var milliseconds: String {
        let (seconds, attoseconds) = components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return String(format: "%.2f", ms)
    }

    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A flag one thread raises and others watch.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    func raise() { raised.store(true, ordering: .releasing) }
    var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// A raw TCP connection to the bridge, for clients that misbehave. A class, so that many can be held
/// in an array (a `TCPStream` cannot be copied).
final class Connection {
    let stream: TCPStream
    /// Bytes received and not yet taken.
    private var buffer: [UInt8] = []
    private var start = 0

    init?(port: UInt16, timeout: Duration = .seconds(2)) {
        guard let stream = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: port), timeout: timeout) else {
            return nil
        }
        self.stream = stream
    }

    /// A connection made elsewhere (from a chosen source address, say).
    init(adopting stream: consuming TCPStream) {
        self.stream = stream
    }

    var descriptor: Int32 { stream.descriptor }

    /// Sends all of `bytes`; `false` when the connection failed (closed by the server, or the deadline).
    func send(_ bytes: [UInt8], timeout: Duration = .seconds(2)) -> Bool {
        (try? stream.write(bytes, deadline: .now + timeout)) != nil
    }

    /// The next complete Modbus TCP answer (MBAP header and PDU), or why there is none.
    func readAnswer(timeout: Duration = .seconds(2)) -> Result<[UInt8], SocketError> {
        let deadline = ContinuousClock.now + timeout
        while true {
            let available = buffer.count - start
            if available >= 6 {
                let size = 6 + (Int(buffer[start + 4]) << 8 | Int(buffer[start + 5]))
                if available >= size {
                    let answer = Array(buffer[start..<(start + size)])
                    start += size
                    if start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
                    return .success(answer)
                }
            }
            do {
                if start > 0 { buffer.removeFirst(start); start = 0 }
                buffer += try stream.read(upTo: 65536, deadline: deadline)
            } catch {
                return .failure(error)
            }
        }
    }

    /// Whether the server closes the connection within `timeout`, discarding anything it still sends.
    func closedByServer(within timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                _ = try stream.read(upTo: 65536, deadline: deadline)
            } catch {
                return error == .closedByPeer || error == .connectionReset
            }
        }
    }

    /// Whether the server has closed the connection (checked without waiting).
    var isClosedByServer: Bool {
        var entry = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
        guard pollDescriptors(&entry, timeout: .zero) > 0 else { return false }
        var byte: UInt8 = 0
        let got = recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK))
        return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }
}

/// Lowers the calling thread's scheduling priority (nice 10). Load generators run on the same two
/// cores as the bridge they attack; on a real network they would be other machines. With a lower
/// priority they still saturate the bridge but cannot starve the well-behaved client whose latency
/// the test measures: what is measured is the bridge's latency under attack, not the scheduler's.
func lowerThreadPriority() {
    #if canImport(Glibc)
    // Linux's nice is per thread: `setpriority` with the thread's id (glibc's `gettid`, which
    // Swift's Glibc module does not export).
    guard let symbol = dlsym(nil, "gettid") else { return }
    let gettid = unsafeBitCast(symbol, to: (@convention(c) () -> pid_t).self)
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(gettid()), 10)
    #endif
}

/// Waits on nothing for `duration`: the pacing of a load generator (a rate, not a wait for an event).
func pace(_ duration: Duration) {
    var none: [pollfd] = []
    _ = pollDescriptors(&none, timeout: duration)
}
