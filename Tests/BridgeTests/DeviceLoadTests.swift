import Bridge
import SEC1000Client
import SEC1000Simulator
import TestSupport
import Testing

extension Reliability {
    /// The device's own log, taken while Modbus clients hammer the bridge: the bridge never opens two
    /// transactions to the device at once, never polls faster than its interval nor closer than its
    /// minimum gap, and backs off, up to its cap, from a device that keeps failing.
    ///
    /// `SEC1000_LOAD_SECONDS` (default 4) lengthens the two timed runs.
    @Suite("The device's view under heavy Modbus load", .timeLimit(.minutes(30)))
    struct DeviceLoadTests {
        static let duration = Duration.seconds(ReliabilityEnvironment.integer("SEC1000_LOAD_SECONDS") ?? 4)
        static let clients = 6
        /// How much earlier than the bridge's schedule the device may see a connection: the device
        /// stamps it on the thread it starts per connection, a little after the bridge connected.
        static let early = Duration.milliseconds(ReliabilityEnvironment.underSanitizer ? 40 : 10)
        /// How much later: a loaded machine schedules the poller late, never early.
        static let late = Duration.milliseconds(ReliabilityEnvironment.underSanitizer ? 400 : 120)

        /// Runs `clients` Modbus clients reading blocks A, B and C back to back while `body` runs.
        func underLoad(_ harness: BridgeHarness, _ body: () async throws -> Void) async throws -> Int {
            let stop = StopFlag()
            let port = harness.port
            async let reads = withTaskGroup(of: Int.self) { group in
                for _ in 0..<Self.clients { group.addTask { await offPool { ModbusLoad(port: port).run(until: stop) } } }
                return await group.reduce(0, +)
            }
            do {
                try await body()
            } catch {
                stop.raise()
                _ = await reads
                throw error
            }
            stop.raise()
            return await reads
        }

        @Test func pollsKeepTheirIntervalUnderLoad() async throws {
            let interval = Duration.milliseconds(100)
            let gap = Duration.milliseconds(30)
            try await BridgeHarness.run(simulators: [SimulatorConfiguration()], configure: {
                $0.interval = interval
                $0.minimumGap = gap
                $0.staleAfter = .seconds(1)
            }) { harness in
                let device = harness.device
                let before = device.records.count
                let started = ContinuousClock.now
                let reads = try await underLoad(harness) {
                    // A timed load, not a wait for an event.
                    try await Task.sleep(for: Self.duration)
                }
                let elapsed = ContinuousClock.now - started
                let all = Array(device.records[before...])
                // Polls only: the bridge also reads the export settings now and then (block D),
                // which the minimum gap spaces but the poll interval does not.
                let records = all.filter { $0.request == .readMeasurements }
                let starts = records.map(\.opened).sorted()
                let intervals = zip(starts, starts.dropFirst()).map { $1 - $0 }
                print("[device] healthy: \(reads) Modbus reads in \(elapsed.seconds) s (\(Int(Double(reads) / elapsed.seconds)) per second) from \(Self.clients) clients; \(records.count) polls, intervals \(intervals.min()?.milliseconds ?? "-")...\(intervals.max()?.milliseconds ?? "-") ms")
                #expect(device.maximumConcurrency == 1)
                expectSpacing(all, minimumGap: gap, early: Self.early)
                #expect(intervals.allSatisfy { $0 >= interval - Self.early }, "polled faster than the interval: \(intervals.sorted().prefix(5))")
                // Over any run of polls the device's clock jitter does not add up: n polls span n intervals.
                for (i, first) in starts.enumerated() {
                    for (n, later) in starts[(i + 1)...].enumerated() where later - first < interval * (n + 1) - Self.early {
                        Issue.record("\(n + 2) polls within \((later - first).milliseconds) ms")
                    }
                }
                // The load does not starve the poller either.
                #expect(Double(records.count) >= elapsed.seconds / interval.seconds * 0.6, "\(records.count) polls in \(elapsed)")
                #expect(records.allSatisfy { $0.measurementsSent != nil })
                #expect(reads > 1000)
            }
        }

        @Test func retriesKeepTheGapAndPollsKeepTheInterval() async throws {
            let interval = Duration.milliseconds(200)
            let gap = Duration.milliseconds(30)
            let attempts = 3
            var flaky = SimulatorConfiguration()
            flaky.faults = FaultRates(drop: 0.1, shortAnswer: 0.3, badChecksum: 0.15, truncate: 0.15)
            try await BridgeHarness.run(simulators: [flaky], waitForSample: false, configure: {
                $0.interval = interval
                $0.minimumGap = gap
                $0.retry = RetryPolicy(attempts: attempts, wait: .zero)
                $0.maxBackoff = .milliseconds(800)
                $0.staleAfter = .seconds(2)
            }) { harness in
                let device = harness.device
                let reads = try await underLoad(harness) { try await Task.sleep(for: Self.duration) }
                let all = device.records.sorted { $0.opened < $1.opened }
                #expect(device.maximumConcurrency == 1)
                expectSpacing(all, minimumGap: gap, early: Self.early)
                // Polls only: settings reads (block D) follow good polls at the minimum gap.
                let records = all.filter { $0.request == .readMeasurements }

                // Attempts of one poll follow each other after the minimum gap; the next poll
                // starts an interval (or a back-off) after the first attempt of this one.
                let threshold = gap + (interval - gap * attempts) / 2
                var cycles: [[RequestRecord]] = []
                for record in records {
                    if let last = cycles.last?.last, record.opened - last.closed < threshold {
                        cycles[cycles.count - 1].append(record)
                    } else {
                        cycles.append([record])
                    }
                }
                let failedCycles = cycles.filter { $0.allSatisfy { $0.measurementsSent == nil } }.count
                print("[device] flaky: \(reads) Modbus reads; \(records.count) transactions in \(cycles.count) polls, \(records.filter { $0.measurementsSent == nil }.count) failed attempts, \(failedCycles) polls failed whole")
                #expect(cycles.allSatisfy { $0.count <= attempts }, "more attempts than the policy allows: \(cycles.map(\.count))")
                #expect(cycles.dropLast().allSatisfy { $0.count == attempts || $0.last?.measurementsSent != nil },
                        "a poll ended early without a good answer")
                var failuresInARow = 0
                for (cycle, next) in zip(cycles, cycles.dropFirst()) {
                    let succeeded = cycle.contains { $0.measurementsSent != nil }
                    failuresInARow = succeeded ? 0 : failuresInARow + 1
                    let expected = succeeded ? interval : backoff(interval: interval, cap: .milliseconds(800), failures: failuresInARow)
                    let pause = next[0].opened - cycle[0].opened
                    #expect(pause >= expected - Self.early, "poll after \(pause.milliseconds) ms, expected \(expected.milliseconds) ms")
                }
                #expect(cycles.count >= 8)
                #expect(records.contains { $0.measurementsSent == nil } && records.contains { $0.measurementsSent != nil })
            }
        }

        @Test func aDeviceThatIsDownIsBackedOffUpToTheCap() async throws {
            let interval = Duration.milliseconds(100)
            let cap = Duration.milliseconds(800)
            let gap = Duration.milliseconds(20)
            var down = SimulatorConfiguration()
            down.faults = FaultRates(drop: 1)
            try await BridgeHarness.run(simulators: [down], waitForSample: false, configure: {
                $0.interval = interval
                $0.minimumGap = gap
                $0.retry = RetryPolicy(attempts: 2, wait: .zero)
                $0.maxBackoff = cap
            }) { harness in
                let device = harness.device
                var recoveredAt = ContinuousClock.now
                let reads = try await underLoad(harness) {
                    // 100 + 200 + 400 + 800 + 800 + 800 ms of back-off: seven polls of two attempts.
                    try await waitUntil("seven failed polls", timeout: .seconds(15)) { device.records.count >= 14 }
                    recoveredAt = .now
                    device.setFaults(.none)
                    try await waitUntil("four good polls after recovery", timeout: .seconds(15)) {
                        device.records.filter { $0.measurementsSent != nil }.count >= 4
                    }
                }
                let records = device.records.sorted { $0.opened < $1.opened }
                expectSpacing(records, minimumGap: gap, early: Self.early)
                #expect(device.maximumConcurrency == 1)
                let failed = records.filter { $0.measurementsSent == nil && $0.opened < recoveredAt }
                // Two attempts per poll, the minimum gap apart.
                let polls = stride(from: 0, to: failed.count - 1, by: 2).map { (failed[$0], failed[$0 + 1]) }
                #expect(polls.allSatisfy { $1.opened - $0.closed < gap + Self.late }, "retries of one poll")
                let pauses = zip(polls, polls.dropFirst()).map { $1.0.opened - $0.0.opened }
                print("[device] down: \(reads) Modbus reads meanwhile; pauses between polls \(pauses.map(\.milliseconds)) ms (interval \(interval.milliseconds), cap \(cap.milliseconds))")
                for (index, pause) in pauses.enumerated() {
                    let expected = backoff(interval: interval, cap: cap, failures: index + 1)
                    #expect(pause >= expected - Self.early && pause <= expected + Self.late,
                            "pause \(index + 1): \(pause.milliseconds) ms, expected \(expected.milliseconds) ms")
                }
                #expect(pauses.filter { $0 >= cap - Self.early }.count >= 2, "the back-off reached its cap and stayed there")
                // Recovered: polls are an interval apart again.
                let good = records.filter { $0.measurementsSent != nil }.map(\.opened)
                let after = zip(good, good.dropFirst()).map { $1 - $0 }
                print("[device] after recovery: intervals \(after.map(\.milliseconds)) ms")
                #expect(after.allSatisfy { $0 >= interval - Self.early && $0 <= interval + Self.late })
            }
        }
    }
}

/// The pause the contract's back-off rule gives after `failures` failed polls in a row: the
/// interval, doubled per further failure, capped.
func backoff(interval: Duration, cap: Duration, failures: Int) -> Duration {
    var pause = interval
    for _ in 1..<max(1, failures) { pause = min(pause * 2, max(cap, interval)) }
    return pause
}

/// A Modbus client reading blocks A, B and C back to back, counting answers (values or exceptions).
struct ModbusLoad {
    let port: UInt16

    func run(until stop: StopFlag) -> Int {
        guard let client = try? ModbusClient(port: port) else { return 0 }
        var answered = 0
        while !stop.isRaised {
            for (address, count) in [(0, 28), (100, 28), (200, 10)] {
                if case .failed = client.read(address, count) { continue }
                answered += 1
            }
        }
        return answered
    }
}

/// Never two transactions at once, and at least `minimumGap` from the end of one to the start of
/// the next, as the device saw them.
///
/// The bridge ends a transaction after the device's answer (`answered`) or after the device closed
/// (`closed`, stamped before the close): both are lower bounds of the end. After a hang only the
/// bridge knows when it gave up, so the gap after a hang is not judged here.
func expectSpacing(_ records: [RequestRecord], minimumGap: Duration, early: Duration) {
    let sorted = records.sorted { $0.opened < $1.opened }
    #expect(sorted.allSatisfy { $0.concurrent == 1 }, "a transaction began while another was open")
    let gaps = zip(sorted, sorted.dropFirst()).compactMap { previous, next -> Duration? in
        guard let end = previous.answered ?? (previous.fault == .hang ? nil : previous.closed) else { return nil }
        return next.opened - end
    }
    let smallest = gaps.min() ?? .zero
    print("[device] \(records.count) transactions, smallest gap between two \(smallest.milliseconds) ms (minimum gap \(minimumGap.milliseconds) ms)")
    #expect(smallest >= minimumGap - early, "gaps: \(gaps.sorted().prefix(5).map(\.milliseconds))")
}
