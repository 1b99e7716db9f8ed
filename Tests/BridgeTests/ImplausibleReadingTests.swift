import Bridge
import Foundation
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// Issue 14, defect 1: a valid frame of impossible values was served as fresh and its
/// 2,147,483,647 W integrated into the persisted counters.
@Suite("Implausible readings", .timeLimit(.minutes(1)))
struct ImplausibleReadingTests {
    /// A broken device from the start: nothing is served, register 206 says why, the log names the
    /// rule and the values, and the counters (block E and the state file) stay where they started.
    @Test func aBrokenDeviceIsNeverServedNorIntegrated() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let log = LogRecorder()
            var broken = SimulatorConfiguration(replayCapture: true)
            broken.faults = FaultRates(implausible: 1)
            try await BridgeHarness.run(simulators: [broken], waitForSample: false, logger: log.logger, configure: {
                $0.energy.statePath = path
                $0.energy.saveInterval = .milliseconds(100)
                $0.energy.alignments = [1: [.gridImport: 1]]
            }) { harness in
                try await waitUntil("six implausible answers") {
                    harness.device.records.filter { $0.fault == .implausible }.count >= 6
                }
                let client = try ModbusClient(port: harness.port)
                #expect(await offPool { client.read(0, 28) } == .exception(0x0B), "block A")
                #expect(await offPool { client.read(100, 28) } == .exception(0x0B), "block B")
                #expect(await offPool { client.read(400, 12) } == .exception(0x0B), "block E")
                let status = try #require(await offPool { client.read(200, 10) }.values)
                #expect(status[0] == 0b1010, "no sample, last poll failed, never fresh")
                #expect(status[6] == 6, "register 206: implausible reading")
                #expect(harness.state.current.sample == nil)
                #expect(harness.state.current.goodPolls == 0)
            }
            let refused = log.messages.filter { $0.contains("implausible reading refused") }
            // One warning for the run of bad readings, the rest at debug.
            #expect(refused.filter { $0.hasPrefix("warning ") }.count == 1, "\(refused)")
            #expect(refused.filter { $0.hasPrefix("debug ") }.count >= 5)
            #expect(refused.allSatisfy { $0.contains("rule=voltage-range") && $0.contains("-230.0 V") && $0.contains("2147483647") })
            // Saved at shutdown: the aligned 1 Wh and nothing else.
            let saved = try #require(try EnergyStateFile(path: path).load()?[1])
            #expect(saved.counters == EnergyCounters(gridImport: 1))
        }
    }

    /// A device that breaks after good polls: the last good values go stale instead of being
    /// replaced, and the counters stop where the last good poll left them.
    @Test func aDeviceThatBreaksStopsTheCounters() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            try await waitUntil("some exported energy") { (harness.state.current.sample?.energy.gridExport ?? 0) > 0 }
            harness.device.setFaults(FaultRates(implausible: 1))
            try await waitUntil("the implausible reading in register 206") { harness.state.current.lastError == 6 }
            let before = try #require(harness.state.current.sample)
            try await waitUntil("four more implausible answers") {
                harness.device.records.filter { $0.fault == .implausible }.count >= 5
            }
            let after = try #require(harness.state.current.sample)
            #expect(after.energy == before.energy)
            #expect(after.reading == before.reading, "only the capture's values were ever taken")
            #expect(after.energy.gridImport == 0, "the capture only exports")
            try await waitUntil("block A to turn stale") { await offPool { client.read(0, 28) } == .exception(0x0B) }
            let status = try #require(await offPool { client.read(200, 10) }.values)
            #expect(status[0] & 0b11 == 0b10, "not fresh, last poll failed")
            #expect(status[6] == 6)
        }
    }

    /// The integrator's own limit: a poll beyond the plant maximum adds nothing and starts nothing.
    @Test func theIntegratorRefusesAStepNoPlantCanMake() {
        let t0 = ContinuousClock.now
        var integrator = EnergyIntegrator(counters: EnergyCounters(gridImport: 1), maximumGap: .seconds(300), maximumPower: 1_000_000)
        #expect(integrator.add(gridPower: 1600, productionPower: 0, at: t0) == .started)
        // The value, 1.6 s after a good poll: 477 Wh in one step if it were counted.
        #expect(integrator.add(gridPower: .max, productionPower: 3386, at: t0 + .milliseconds(1600)) == .refused(power: 2_147_483_647))
        #expect(integrator.counters == EnergyCounters(gridImport: 1))
        // The refused poll is no start either: the next good one starts afresh.
        #expect(integrator.add(gridPower: 1600, productionPower: 0, at: t0 + .seconds(225)) == .started)
        #expect(integrator.add(gridPower: 1600, productionPower: 0, at: t0 + .seconds(450)) == .counted)
        #expect(integrator.counters == EnergyCounters(gridImport: 101))
        // Production and export are bounded the same way; the maximum itself is a step a plant can make.
        #expect(integrator.add(gridPower: 0, productionPower: 1_000_001, at: t0 + .seconds(460)) == .refused(power: 1_000_001))
        #expect(integrator.add(gridPower: -1_000_001, productionPower: 0, at: t0 + .seconds(470)) == .refused(power: 1_000_001))
        #expect(integrator.add(gridPower: -1_000_000, productionPower: 1_000_000, at: t0 + .seconds(475)) == .started)
        #expect(integrator.add(gridPower: -1_000_000, productionPower: 1_000_000, at: t0 + .seconds(700)) == .counted)
        #expect(integrator.counters == EnergyCounters(gridImport: 101, gridExport: 62_500, production: 62_500))
    }

    /// `--max-plant-power` reaches the integrator: a plausible reading beyond it is served but not counted.
    @Test func theBridgeCountsNothingBeyondItsPlantMaximum() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: { $0.maxPlantPower = 3000 }) { harness in
            // The capture's inverters power is 3386 W: beyond 3000 W.
            try await waitUntil("three good polls") { harness.state.current.goodPolls >= 3 }
            #expect(harness.state.current.sample?.energy == .zero)
            #expect(log.contains("energy step refused: a power beyond the plant maximum"))
            #expect(log.messages.contains { $0.contains("power-w=3386.0") })
        }
    }

    @Test(arguments: [0, -1, .nan, .infinity, 3e9] as [Double])
    func anAbsurdPlantMaximumIsAConfigurationError(_ value: Double) {
        var configuration = BridgeHarness.fastConfiguration(devices: [DeviceConfiguration(address: .init(host: "127.0.0.1", port: 1))])
        configuration.maxPlantPower = value
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }
}
