#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import Locking
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import TestSupport
import Testing
import Threading

/// One owner per device (issue 10): the three defects its design removes, each against a device
/// that takes its time, and a shutdown in the middle of a write.
@Suite("The device service: a bounded line, polls first, shutdown during a write", .timeLimit(.minutes(1)))
struct DeviceServiceTests {
    static func control(writeTimeout: Duration) -> (inout BridgeConfiguration) -> Void {
        { configuration in
            configuration.control = ControlConfiguration(
                enabled: true, allow: [try! AddressRange(parsing: "127.0.0.0/8")], writeTimeout: writeTimeout)
        }
    }

    /// FC16 to 300-305: a new export limit, with the capacity, control mode and meter mode kept.
    static func writeLimit(_ limit: UInt32) -> [UInt8] { ControlTests.writeAll(limit: limit, capacity: 8000, mode: 3, meterMode: 2) }

    static func exceptionAnswer(_ code: UInt8) -> [UInt8] { [0x12, 0x34, 0, 0, 0, 3, 1, 0x90, code] }

    static func limitSets(_ device: SimulatedDevice) -> Int {
        device.records.filter { if case .setExportLimit? = $0.request { true } else { false } }.count
    }

    /// Defect 1: ten writes abandoned by their clients against a device that takes a second per
    /// set. Before: all reached the device, one after the other, and the data went stale. Now the
    /// line is bounded (0x06 beyond it), a write whose client has gone never reaches the device,
    /// and the polls go on between writes: block A stays fresh throughout.
    @Test func abandonedWritesNeverReachTheDeviceAndPollsGoOn() async throws {
        try await BridgeHarness.run(configure: Self.control(writeTimeout: .seconds(3))) { harness in
            harness.device.setCommandBehaviour(setDelay: .seconds(1))
            let port = harness.port
            let stop = StopFlag()
            // A master reading the status flags every 50 ms while the writes come and go.
            struct Watched: Sendable { var reads = 0, stale = 0, last: ContinuousClock.Instant? }
            let watched = Locked(Watched())
            let watcher = BlockingThreadResult {
                guard let client = try? ModbusClient(port: port) else { return }
                while !stop.isRaised {
                    if let flags = client.read(200, 1).values?.first {
                        watched.withLock {
                            $0.reads += 1
                            $0.last = .now
                            if flags & 1 == 0 { $0.stale += 1 }
                        }
                    }
                    pace(.milliseconds(50))
                }
            }
            defer { stop.raise() }
            try await waitUntil("the master's first read") { watched.withLock { $0.reads > 0 } }
            // Twelve writers at once, each gone after 0.2 s: 1 starts, 8 wait, the rest get 0x06.
            let answers = await offPool { () -> [[UInt8]] in
                let writers = (0..<12).map { index in
                    BlockingThreadResult { rawExchange(port: port, Self.writeLimit(UInt32(3000 + index)), timeout: .milliseconds(200)) }
                }
                return writers.map { $0.value() }
            }
            #expect(answers.filter { $0 == Self.exceptionAnswer(0x06) }.count >= 2, "beyond the line: server device busy, \(answers)")
            // Until every write in line has been dropped (their requesters are gone) or done.
            try await waitUntil("the line to empty", timeout: .seconds(10)) {
                harness.runtime.devices[0].state.current.goodPolls > 0 && harness.runtime.devices[0].waitingChanges == 0
            }
            let polls = harness.state.current.goodPolls
            try await waitUntil("two more polls after the writes", timeout: .seconds(5)) { harness.state.current.goodPolls >= polls + 2 }
            // The master read throughout: from before the writes to after the line had emptied.
            let emptied = ContinuousClock.now
            try await waitUntil("a read of the master after the line emptied", timeout: .seconds(5)) {
                watched.withLock { ($0.last ?? emptied) > emptied }
            }
            #expect(Self.limitSets(harness.device) <= 1, "only a write that started before its client left reaches the device")
            stop.raise()
            await offPool { watcher.value() }
            let seen = watched.withLock { $0 }
            #expect(seen.stale == 0, "block A fresh throughout: \(seen.stale) of \(seen.reads) reads stale")
        }
    }

    /// Defect 1 again: writers that wait get an answer within --write-timeout, time in line
    /// included; one whose time ran out in line never reaches the device.
    @Test func waitingWritersAreAnsweredWithinTheWriteTimeout() async throws {
        try await BridgeHarness.run(configure: Self.control(writeTimeout: .seconds(2))) { harness in
            harness.device.setCommandBehaviour(setDelay: .milliseconds(1500))
            let port = harness.port
            let results = await offPool { () -> [(answer: [UInt8], seconds: Double)] in
                let writers = (0..<3).map { index in
                    BlockingThreadResult { () -> ([UInt8], Double) in
                        let started = ContinuousClock.now
                        let answer = rawExchange(port: port, Self.writeLimit(UInt32(4000 + index)), timeout: .seconds(10))
                        let elapsed = (ContinuousClock.now - started).components
                        return (answer, Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18)
                    }
                }
                return writers.map { $0.value() }
            }
            for result in results {
                #expect(!result.answer.isEmpty, "every writer gets an answer")
                // 2 s, and the server's next turn of its loop; a debug build on a busy machine gets 1 s more.
                #expect(result.seconds < 3.0, "answered within the write timeout: \(results)")
            }
            #expect(results.filter { $0.answer == Self.exceptionAnswer(0x0B) }.count >= 2, "\(results)")
            try await waitUntil("the device service to drop what timed out", timeout: .seconds(10)) {
                harness.runtime.devices[0].waitingChanges == 0
            }
            #expect(Self.limitSets(harness.device) <= 2, "the write that timed out in line never reached the device")
        }
    }

    /// Defect 2: graceful shutdown (what SIGTERM triggers) during a write of limit and mode. Before:
    /// the client got EOF, the device had the limit but not the mode, and no audit line. Now the
    /// write finishes, its client gets the normal answer, the one behind it gets 0x0B untouched,
    /// and both are audited.
    @Test func shutdownDuringAWriteFinishesItAndAnswersEveryWriter() async throws {
        let log = LogRecorder()
        let first = Locked<BlockingThreadResult<[UInt8]>?>(nil)
        let second = Locked<BlockingThreadResult<[UInt8]>?>(nil)
        let simulated = Locked<SimulatedDevice?>(nil)
        try await BridgeHarness.run(logger: log.logger, configure: Self.control(writeTimeout: .seconds(8))) { harness in
            simulated.withLock { $0 = harness.device }
            harness.device.setCommandBehaviour(setDelay: .milliseconds(600))
            let port = harness.port
            // Limit 4321 and mode 3 -> 2 (RCR): three sets, 0.6 s each.
            let request = ControlTests.writeAll(limit: 4321, capacity: 8000, mode: 2, meterMode: 2)
            first.withLock { $0 = BlockingThreadResult { rawExchange(port: port, request, timeout: .seconds(10)) } }
            // The limit is set; the two mode switches are still to come when the shutdown begins.
            try await waitUntil("the limit to reach the device") { Self.limitSets(harness.device) == 1 }
            second.withLock { $0 = BlockingThreadResult { rawExchange(port: port, Self.writeLimit(1234), timeout: .seconds(10)) } }
            try await waitUntil("the second write in line") { harness.runtime.devices[0].waitingChanges == 1 }
        }
        // The harness has shut down gracefully: every service has returned.
        let firstAnswer = await offPool { first.withLock { $0 }!.value() }
        let secondAnswer = await offPool { second.withLock { $0 }!.value() }
        #expect(firstAnswer == [0x12, 0x34, 0, 0, 0, 6, 1, 0x10, 0x01, 0x2C, 0x00, 0x06], "the started write finished and was answered")
        #expect(secondAnswer == Self.exceptionAnswer(0x0B), "the waiting write was answered 0x0B")
        #expect(log.messages.contains { $0.contains("control write") && $0.contains("limit=4321W") && $0.contains("outcome=confirmed") })
        let device = try #require(simulated.withLock { $0 })
        #expect(device.settings.exportLimit == 4321 && device.settings.mode == .rcr, "the whole write reached the device")
        // Nothing of the second write did.
        #expect(Self.limitSets(device) == 1)
        #expect(log.messages.contains { $0.contains("control write failed") && $0.contains("limit=1234W") && $0.contains("bridge is stopping") })
    }

    /// Defect 3: a device that never answers 0x43. Before: a settings read after every good poll,
    /// doubling its load. Now a failed settings read backs off like a failed poll.
    @Test func aFailingSettingsReadBacksOff() async throws {
        var silent = SimulatorConfiguration(replayCapture: true)
        silent.unanswered = [.readExportSettings]
        try await BridgeHarness.run(simulators: [silent], configure: { $0.maxBackoff = .seconds(5) }) { harness in
            let start = harness.device.records.count
            try await waitUntil("30 more polls", timeout: .seconds(20)) {
                harness.device.records.dropFirst(start).filter { $0.request == .readMeasurements }.count >= 30
            }
            let records = harness.device.records.dropFirst(start)
            let polls = records.filter { $0.request == .readMeasurements }.count
            let settingsReads = records.filter { $0.request == .readExportSettings }.count
            // 100 ms polls; backing off from 100 ms doubling, 30 polls see about 5 settings reads.
            #expect(settingsReads <= 8, "\(settingsReads) settings reads in \(polls) polls")
            #expect(settingsReads >= 1)
        }
    }
}
