import Bridge
import SEC1000Client
import SEC1000Simulator
import TestSupport
import Testing

@Suite("Stale data and recovery", .timeLimit(.minutes(1)))
struct StalenessTests {
    /// The device stops answering: reads turn to 0x0B once the data pass the stale limit while
    /// block C reports the failure; when it answers again, fresh values return without a restart.
    @Test(arguments: [
        (FaultRates(hang: 1), UInt16(1)),
        (FaultRates(drop: 1), 2),
        (FaultRates(shortAnswer: 1), 3),
        (FaultRates(badChecksum: 1), 4),
        (FaultRates(truncate: 1), 5),
        (FaultRates(implausible: 1), 6),
    ] as [(FaultRates, UInt16)])
    func failingDeviceGoesStaleThenRecovers(faults: FaultRates, errorCode: UInt16) async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            #expect(await offPool { client.read(0, 2) }.values != nil)
            harness.device.setFaults(faults)
            try await waitUntil("block A to turn stale") { await offPool { client.read(0, 28) } == .exception(0x0B) }
            // A hung attempt may still be running when the data go stale: wait for its verdict.
            try await waitUntil("the failure in block C") { harness.state.current.lastPollFailed }
            #expect(await offPool { client.read(100, 2, input: true) } == .exception(0x0B))
            let status = try #require(await offPool { client.read(200, 10) }.values)
            #expect(status[0] & 0b1 == 0, "not fresh")
            #expect(status[0] & 0b10 != 0, "last poll failed")
            #expect(status[0] & 0b1000 == 0, "there was a good sample")
            #expect(status[6] == errorCode)
            #expect(UInt32(status[4]) << 16 | UInt32(status[5]) >= 1, "failed polls counted")
            #expect(status[1] < 65535, "the age of the last good sample")

            harness.device.setFaults(.none)
            try await waitUntil("fresh values after recovery") { await offPool { client.read(0, 28) }.values != nil }
            let recovered = try #require(await offPool { client.read(200, 10) }.values)
            #expect(recovered[0] & 0b11 == 0b01, "fresh, last poll good")
            #expect(recovered[6] == errorCode, "the last error is kept after recovery")
        }
    }

    /// A stale sample is refused at the moment of the request, even with no poll in between.
    @Test func staleLimitIsJudgedWhenTheRequestArrives() async throws {
        try await BridgeHarness.run(configure: {
            $0.interval = .seconds(30)
            $0.staleAfter = .seconds(30)
        }) { harness in
            let client = try ModbusClient(port: harness.port)
            #expect(await offPool { client.read(0, 2) }.values != nil)
            // Same snapshot, judged later: use a state whose limit has passed.
            let snapshot = harness.state.current
            let sample = try #require(snapshot.sample)
            #expect(harness.state.isFresh(sample, at: sample.taken + .seconds(30)))
            #expect(!harness.state.isFresh(sample, at: sample.taken + .seconds(30) + .milliseconds(1)))
        }
    }

    /// Consecutive failures back off instead of hammering a device that is down.
    @Test func failuresBackOffUpToTheCap() async throws {
        var down = SimulatorConfiguration()
        down.faults = FaultRates(drop: 1)
        try await BridgeHarness.run(simulators: [down], waitForSample: false, configure: {
            $0.interval = .milliseconds(50)
            $0.maxBackoff = .milliseconds(400)
            $0.retry = RetryPolicy(attempts: 1, wait: .zero)
        }) { harness in
            try await waitUntil("eight failed polls", timeout: .seconds(15)) { harness.device.records.count >= 8 }
            // The poller spaces the starts of its polls, so the gaps are from start to start.
            let opened = harness.device.records.map(\.opened).sorted()
            let gaps = zip(opened, opened.dropFirst()).map { $1 - $0 }
            // 50, 100, 200, 400, 400, ... ms: later gaps are long (without back-off all would be
            // 50 ms), and once the cap is reached they stop growing (uncapped they would be 800,
            // 1600, 3200 ms). A busy machine delays a timer or the device's accept thread now and
            // then: one late stamp lengthens a gap and shortens the next, so one gap of the capped
            // ones may be long, and the first gaps, in the test run's busy start, are not bounded.
            // A sanitized build stretches every step, hence a wider slack there (with 1 s, an
            // uncapped back-off still shows two gaps beyond it).
            let slack: Duration = ReliabilityEnvironment.underSanitizer ? .milliseconds(600) : .milliseconds(300)
            #expect(gaps[2...].allSatisfy { $0 >= .milliseconds(150) }, "\(gaps)")
            #expect(gaps[3...].filter { $0 >= .milliseconds(400) + slack }.count <= 1, "\(gaps)")
        }
    }
}
