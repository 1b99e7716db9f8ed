import Bridge
import Foundation
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import Locking
import TestSupport
import Testing

extension Reliability {
    /// The simulated device injects every fault at high rates while Modbus clients read
    /// continuously; every value served is checked against what the device really sent.
    ///
    /// CI runs it for 30 s (15 s under a sanitizer). Long mode: `SEC1000_SOAK_SECONDS=3600`;
    /// `SEC1000_SOAK_SEED` replays another fault sequence.
    @Suite("Fault soak", .timeLimit(.minutes(120)))
    struct SoakTests {
        static let duration = Duration.seconds(
            ReliabilityEnvironment.integer("SEC1000_SOAK_SECONDS") ?? (ReliabilityEnvironment.underSanitizer ? 15 : 30))
        static let seed = UInt64(ReliabilityEnvironment.integer("SEC1000_SOAK_SEED") ?? 7)
        static let readers = 3

        /// Every fault the simulator knows, each tried on every request in this order (so the
        /// later ones hit a little less often than their rate): about 45% of answers are bad.
        static let faults = FaultRates(
            drop: 0.05, hang: 0.04, shortAnswer: 0.12, badChecksum: 0.1, truncate: 0.1, zeroPower: 0.2, slow: 0.1,
            delay: .milliseconds(40))

        @Test func everyFaultAtHighRatesWhileClientsRead() async throws {
            var simulator = SimulatorConfiguration()
            // A 20-second day: values change at every poll, every soak sees daylight (where a false
            // zero must be hidden) and night (where the real zero must come through).
            simulator.model = MeasurementModel(peakPower: 9000, dayLength: 20)
            simulator.faults = Self.faults
            simulator.seed = Self.seed
            let sanitized = ReliabilityEnvironment.underSanitizer
            let limits = SoakLimits(
                staleAfter: sanitized ? .seconds(1) : .milliseconds(250),
                answerTimeout: sanitized ? .milliseconds(400) : .milliseconds(120),
                slack: ReliabilityEnvironment.slack)
            try await BridgeHarness.run(simulators: [simulator], configure: {
                $0.interval = .milliseconds(25)
                $0.staleAfter = limits.staleAfter
                $0.timeouts = Timeouts(connect: .milliseconds(500), answer: limits.answerTimeout)
                $0.retry = RetryPolicy(attempts: 2, wait: .zero)
                $0.minimumGap = .milliseconds(5)
                $0.maxBackoff = .milliseconds(200)
            }) { harness in
                try await soak(harness, limits: limits)
            }
        }

        func soak(_ harness: BridgeHarness, limits: SoakLimits) async throws {
            let device = harness.device
            let port = harness.port
            let stop = StopFlag()
            let samples = SampleQueue()
            let started = ContinuousClock.now
            async let readerReports = withTaskGroup(of: ReaderReport.self) { group in
                for reader in 0..<Self.readers {
                    group.addTask { await offPool { SoakReader(port: port, index: reader).run(until: stop, into: samples) } }
                }
                return await group.reduce(into: [ReaderReport]()) { $0.append($1) }
            }

            // Check the reads as they age: a read is judged once every answer the device sent
            // before it has surely been recorded (the device records a connection when it closes).
            var oracle = SoakOracle(limits: limits)
            var recordsSeen = 0
            var notYetDue: [ReadSample] = []
            func checkReads(olderThan limit: ContinuousClock.Instant) {
                let records = device.records
                oracle.ingest(records[recordsSeen...])
                recordsSeen = records.count
                notYetDue += samples.takeAll()
                for sample in notYetDue where sample.end < limit { oracle.check(sample) }
                notYetDue.removeAll { $0.end < limit }
            }
            let lag = Duration.seconds(2)
            while ContinuousClock.now < started + Self.duration {
                // A periodic check of a soak that runs for a fixed time, not a wait for an event.
                try await Task.sleep(for: .seconds(1))
                checkReads(olderThan: .now - lag)
            }

            // Faults stop: the bridge recovers by itself, without a restart.
            let faultsStopped = ContinuousClock.now
            device.setFaults(.none)
            let client = try ModbusClient(port: port)
            try await waitUntil("fresh values after the faults stop", timeout: .seconds(10)) {
                guard let values = await offPool({ client.read(0, 28) }).values else { return false }
                let records = device.records
                return records.contains {
                    $0.answered.map { $0 > faultsStopped } == true
                        && $0.measurementsSent.map { Array($0.rawValues[..<10]) } == Array(int32s(values)[..<10])
                }
            }
            let status = try #require(await offPool { client.read(200, 10) }.values)
            #expect(status[0] & 0b11 == 0b01, "fresh, and the last poll good")
            let recovered = ContinuousClock.now - faultsStopped

            stop.raise()
            let reports = await readerReports
            let stopped = ContinuousClock.now
            // Every connection before the readers stopped is closed once a later one has been recorded.
            try await waitUntil("the device to record a connection opened after the readers stopped", timeout: .seconds(10)) {
                device.records.contains { $0.opened > stopped }
            }
            checkReads(olderThan: stopped + .seconds(1))

            let records = device.records
            let faults = Dictionary(grouping: records.compactMap(\.fault), by: { $0 }).mapValues(\.count)
            let state = harness.state.current
            let reads = reports.reduce(into: ReaderReport()) { $0.merge($1) }
            print("""
                [soak] \(Self.duration.seconds) s, seed \(Self.seed): \(records.count) device transactions, \
                \(records.filter { $0.measurementsSent != nil }.count) valid measurement answers; faults injected: \
                \(faults.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")); \
                bridge polls \(state.goodPolls) good, \(state.failedPolls) failed attempts
                [soak] reads: block A \(oracle.servedA) served (\(oracle.substituted) with a substituted inverters power) and \
                \(oracle.refusedA) refused with 0x0B, block B \(oracle.servedB) served and \(oracle.refusedB) refused, \
                block C \(reads.statusReads) served; \
                oldest data served \(oracle.oldestServed.milliseconds) ms after the device sent them, freshest valid answer (more than the slack before) a refusal \
                \(oracle.freshestRefused?.milliseconds ?? "-") ms (stale limit \(limits.staleAfter.milliseconds) ms); recovered \(recovered.milliseconds) ms after the faults stopped
                """)

            // The device's view: never two transactions at once.
            #expect(device.maximumConcurrency == 1)
            #expect(records.allSatisfy { $0.concurrent == 1 })
            expectSpacing(records, minimumGap: .milliseconds(5), early: DeviceLoadTests.early)
            // Every fault was injected.
            for fault in [Fault.drop, .hang, .shortAnswer, .badChecksum, .truncate, .zeroPower, .slow] {
                #expect(faults[fault, default: 0] > 0, "fault \(fault) injected")
            }
            // The oracle's verdicts.
            #expect(oracle.servedA > 100 && oracle.servedB > 10, "clients read values during the soak")
            #expect(oracle.substituted > 0, "false zeros were hidden, and the served substitutes checked")
            #expect(oracle.problems.isEmpty, "\(oracle.problemCount) problems, first: \(oracle.problems)")
            #expect(reads.problems.isEmpty, "\(reads.problems)")
            #expect(reads.statusReads > 10)
        }
    }
}

/// Limits of the soak's bridge.
struct SoakLimits: Sendable {
    let staleAfter: Duration
    let answerTimeout: Duration
    let slack: Duration
}

/// One read by a soak client: which block, when it was sent and answered, and what came back.
struct ReadSample: Sendable {
    enum Block: Sendable { case a, b }
    let block: Block
    let start: ContinuousClock.Instant
    let end: ContinuousClock.Instant
    let outcome: ReadOutcome
}

/// Reads handed from the clients to the checker.
final class SampleQueue: Sendable {
    private let samples = Locked<[ReadSample]>([])

    func append(_ more: [ReadSample]) {
        samples.withLock { $0 += more }
    }

    func takeAll() -> [ReadSample] {
        samples.withLock { taken in
            defer { taken = [] }
            return taken
        }
    }
}

struct ReaderReport: Sendable {
    var statusReads = 0
    var problems: [String] = []

    mutating func merge(_ other: ReaderReport) {
        statusReads += other.statusReads
        problems += other.problems.prefix(max(0, 5 - problems.count))
    }
}

/// A Modbus client reading blocks A, B and C as fast as it can, handing its reads of A and B over
/// for checking. Block C is checked here: always served, its counters never go back.
struct SoakReader {
    let port: UInt16
    let index: Int

    func run(until stop: StopFlag, into samples: SampleQueue) -> ReaderReport {
        // The clients stand for masters on other machines: lower their priority, so that they load
        // the bridge's server thread without starving its poller of the CPU they would not share.
        lowerThreadPriority()
        var report = ReaderReport()
        guard let client = try? ModbusClient(port: port) else {
            return ReaderReport(problems: ["reader \(index) cannot connect"])
        }
        var pending: [ReadSample] = []
        var goodPolls: UInt32 = 0
        var failedPolls: UInt32 = 0
        var round = 0
        while !stop.isRaised {
            round += 1
            let block: ReadSample.Block = round % 4 == 0 ? .b : .a
            let start = ContinuousClock.now
            let outcome = client.read(block == .a ? 0 : 100, 28, input: round % 2 == 0)
            pending.append(ReadSample(block: block, start: start, end: .now, outcome: outcome))
            if round % 8 == 0 {
                switch client.read(200, 10) {
                case .registers(let status):
                    report.statusReads += 1
                    let good = UInt32(status[2]) << 16 | UInt32(status[3])
                    let failed = UInt32(status[4]) << 16 | UInt32(status[5])
                    if good < goodPolls || failed < failedPolls || status[0] & 0b1000 != 0 || status[9] != 0 {
                        if report.problems.count < 5 { report.problems.append("block C went back or is wrong: \(status)") }
                    }
                    goodPolls = good
                    failedPolls = failed
                case let other:
                    if report.problems.count < 5 { report.problems.append("block C not served: \(other)") }
                }
            }
            if pending.count >= 64 {
                samples.append(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        samples.append(pending)
        return report
    }
}

/// Judges reads against the device's own record of the valid answers it sent, and when.
///
/// A read of block A or B must carry the raw values of one valid answer (registers 0-19 exactly;
/// register 20 that answer's inverters power, or, where it was 0, a non-zero inverters power the
/// device validly sent before), be internally consistent (derived 22-26, and p1+p2+p3 = grid power,
/// which the model guarantees), and come from an answer no older than the stale limit. A refusal
/// (0x0B) is wrong when a valid answer had arrived within the stale limit before the request.
struct SoakOracle {
    let limits: SoakLimits
    private struct Send { let time: ContinuousClock.Instant; let inverters: Int32 }
    /// Valid answers by their first ten raw values.
    private var sendsByA: [[Int32]: [Send]] = [:]
    /// The same, keyed by block B's float32 bit patterns of those values.
    private var sendsByB: [[UInt32]: [Int32]] = [:]
    /// The first time each non-zero inverters power was validly sent (the filter may substitute it).
    private var nonZeroInverters: [Int32: ContinuousClock.Instant] = [:]
    /// Valid answers the bridge surely received in time: their send times, sorted.
    private var witnesses: [ContinuousClock.Instant] = []

    private(set) var servedA = 0
    private(set) var refusedA = 0
    private(set) var servedB = 0
    private(set) var refusedB = 0
    private(set) var substituted = 0
    /// The oldest data served: from the device's send to the request.
    private(set) var oldestServed = Duration.zero
    /// The freshest valid answer before a refusal: from the device's send to the request.
    private(set) var freshestRefused: Duration?
    private(set) var problemCount = 0
    private(set) var problems: [String] = []

    init(limits: SoakLimits) { self.limits = limits }

    static let scales: [Double] = [10, 10, 10, 100, 100, 100, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]
    static func floatBits(_ value: Int32, scale: Double) -> UInt32 { Float(Double(value) / scale).bitPattern }

    mutating func ingest(_ records: ArraySlice<RequestRecord>) {
        for record in records {
            guard let m = record.measurementsSent, let time = record.answered else { continue }
            let raw = m.rawValues
            let key = Array(raw[..<10])
            sendsByA[key, default: []].append(Send(time: time, inverters: m.invertersPower))
            let bKey = (0..<10).map { Self.floatBits(raw[$0], scale: Self.scales[$0]) }
            if sendsByB[bKey] == nil { sendsByB[bKey] = key }
            if m.invertersPower != 0, nonZeroInverters[m.invertersPower].map({ $0 > time }) ?? true {
                nonZeroInverters[m.invertersPower] = time
            }
            if time - record.opened < limits.answerTimeout / 2 { witnesses.append(time) }
        }
        witnesses.sort()
    }

    private mutating func problem(_ text: String) {
        problemCount += 1
        if problems.count < 5 { problems.append(text) }
    }

    mutating func check(_ sample: ReadSample) {
        switch sample.outcome {
        case .registers(let registers):
            if sample.block == .a { servedA += 1 } else { servedB += 1 }
            let values: [Int32]
            if sample.block == .a {
                values = int32s(registers)
            } else {
                let bits = stride(from: 0, to: 28, by: 2).map { UInt32(registers[$0]) << 16 | UInt32(registers[$0 + 1]) }
                guard let key = sendsByB[Array(bits[..<10])] else {
                    return problem("block B \(floats(registers)) is no valid answer of the device")
                }
                // Register 20's integer: the one whose float32 is served.
                let inverters = sendsByA[key]!.map(\.inverters).first { Self.floatBits($0, scale: 1000) == bits[10] }
                    ?? nonZeroInverters.keys.first { Self.floatBits($0, scale: 1000) == bits[10] }
                guard let inverters else { return problem("block B inverters power \(floats(registers)[10]) was never sent") }
                let grid = key[9]
                let derived = [inverters &+ grid, max(grid, 0), max(-grid, 0)]
                guard (0..<3).allSatisfy({ Self.floatBits(derived[$0], scale: 1000) == bits[11 + $0] }) else {
                    return problem("torn block B: \(floats(registers))")
                }
                values = key + [inverters] + derived
            }
            checkValues(values, sample)
        case .exception(0x0B):
            if sample.block == .a { refusedA += 1 } else { refusedB += 1 }
            // A valid answer sent in [end - staleAfter + slack, start - slack] was published
            // before the request and was still fresh when it arrived.
            let from = sample.end - limits.staleAfter + limits.slack
            let to = sample.start - limits.slack
            let index = witnesses.partitionIndex(before: from)
            let before = witnesses[..<witnesses.partitionIndex(before: sample.start - limits.slack)].last
            if let before { freshestRefused = min(freshestRefused ?? .seconds(3600), sample.start - before) }
            if index < witnesses.count, witnesses[index] <= to {
                problem("0x0B although the device answered validly \((sample.start - witnesses[index]).milliseconds) ms before the request")
            }
        case let other:
            problem("a read of block \(sample.block) got \(other)")
        }
    }

    private mutating func checkValues(_ v: [Int32], _ sample: ReadSample) {
        let grid = v[9]
        guard v[6] &+ v[7] &+ v[8] == grid, v[11] == v[10] &+ grid, v[12] == max(grid, 0), v[13] == max(-grid, 0) else {
            return problem("torn snapshot: \(v)")
        }
        guard let sends = sendsByA[Array(v[..<10])]?.filter({ $0.time <= sample.end }), !sends.isEmpty else {
            return problem("values the device never validly sent: \(v)")
        }
        let direct = sends.filter { $0.inverters == v[10] }
        let substitutable = v[10] != 0 && (nonZeroInverters[v[10]].map { $0 <= sample.end } ?? false)
        let matching = direct.isEmpty && substitutable ? sends.filter { $0.inverters == 0 } : direct
        guard let latest = matching.map(\.time).max() else {
            return problem("inverters power \(v[10]) is neither sent with these values nor a previously sent value: \(v)")
        }
        if direct.isEmpty { substituted += 1 }
        oldestServed = max(oldestServed, sample.start - latest)
        if sample.start - latest > limits.staleAfter + limits.slack {
            problem("stale values served: sent \((sample.start - latest).milliseconds) ms before the request, limit \(limits.staleAfter)")
        }
    }
}

extension Array where Element == ContinuousClock.Instant {
    /// The index of the first element not before `instant`, in a sorted array.
    func partitionIndex(before instant: ContinuousClock.Instant) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < instant { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
