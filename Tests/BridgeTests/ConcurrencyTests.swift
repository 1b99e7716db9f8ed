import Bridge
import SEC1000Simulator
import TestSupport
import Testing

@Suite("Concurrent clients", .timeLimit(.minutes(1)))
struct ConcurrencyTests {
    /// Eight clients read block A while polls publish fast-changing values. Every answer must
    /// be one poll: the phases sum to the grid power and the derived registers agree with it.
    @Test func noReadEverMixesTwoPolls() async throws {
        var changing = SimulatorConfiguration()
        changing.model = MeasurementModel(peakPower: 9000, dayLength: 60)
        try await BridgeHarness.run(simulators: [changing], configure: { $0.interval = .milliseconds(5) }) { harness in
            // Every client reads until the device has been polled ten more times and it has seen the
            // values change (a client whose thread starts late must still see a change).
            let target = harness.state.current.goodPolls + 10
            let state = harness.state
            let results = await withTaskGroup(of: (reads: Int, torn: Int, distinct: Int).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        await offPool {
                            guard let client = try? ModbusClient(port: harness.port) else { return (0, -1, 0) }
                            var torn = 0
                            var reads = 0
                            var seen = Set<[Int32]>()
                            let deadline = ContinuousClock.now + .seconds(20)
                            while state.current.goodPolls < target || seen.count < 2, ContinuousClock.now < deadline {
                                reads += 1
                                // A refusal (0x0B when a busy machine delays a poll) is not a torn read.
                                guard let registers = client.read(0, 28).values else { continue }
                                let v = int32s(registers)
                                seen.insert(v)
                                let grid = v[9], inverters = v[10]
                                if v[6] &+ v[7] &+ v[8] != grid || v[11] != inverters &+ grid
                                    || v[12] != max(grid, 0) || v[13] != max(-grid, 0) { torn += 1 }
                            }
                            return (reads, torn, seen.count)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(state.current.goodPolls >= target, "polls published during the reads")
            #expect(results.map(\.torn) == Array(repeating: 0, count: 8))
            #expect(results.allSatisfy { $0.distinct > 1 }, "clients saw the values change")
            #expect(results.allSatisfy { $0.reads > 0 })
            #expect(harness.device.maximumConcurrency == 1, "one transaction at a time to the device")
        }
    }

    @Test func severalDevicesOnSeveralUnitIds() async throws {
        var first = SimulatorConfiguration(replayCapture: true)
        first.seed = 1
        var second = SimulatorConfiguration()
        second.seed = 2
        try await BridgeHarness.run(simulators: [first, second, SimulatorConfiguration()]) { harness in
            var m = capturedMeasurements
            m.meterPower = 777
            m.powers = [700, 70, 7]
            harness.devices[1].setMeasurements(m)
            let polls = harness.runtime.states[1].current.goodPolls
            try await waitUntil("unit 2's poll of the new values") { harness.runtime.states[1].current.goodPolls > polls + 1 }
            let client = try ModbusClient(port: harness.port, unit: 1)
            #expect(await offPool { client.read(18, 2) }.values.map(int32s) == [-351])
            client.setUnit(2)
            #expect(await offPool { client.read(18, 2) }.values.map(int32s) == [777])
            client.setUnit(3)
            #expect(await offPool { client.read(200, 1) }.values != nil)
            client.setUnit(4)
            #expect(await offPool { client.read(18, 2) } == .exception(0x0A))
        }
    }
}
