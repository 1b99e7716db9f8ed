import Bridge
import Foundation
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import TestSupport
import Testing

@Suite("Energy counters across restarts, damaged state files and the grid-sign check", .timeLimit(.minutes(1)))
struct EnergyServingTests {
    func load(_ path: String) throws -> EnergyRecord? { try EnergyStateFile(path: path).load()?[1] }

    @Test func countersSurviveARestartAndReadingsApplyOnce() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/state/energy"
            func configure(export: UInt64) -> (inout BridgeConfiguration) -> Void {
                { $0.energy.statePath = path; $0.energy.alignments = [1: [.gridExport: export]] }
            }
            // First run: the capture exports 351 W and produces 3386 W on top of the 1000 Wh given.
            try await BridgeHarness.run(configure: configure(export: 1000)) { harness in
                let polls = harness.state.current.goodPolls
                try await waitUntil("a few polls") { harness.state.current.goodPolls > polls + 3 }
            }
            let first = try #require(try load(path))
            #expect(first.counters.gridExport > 1000 && first.counters.gridExport < 1001)
            #expect(first.counters.production > 0)
            #expect(first.counters.gridImport == 0)
            #expect(first.applied == [.gridExport: 1000])

            // Second run, same option (as left in a service file): not applied again.
            try await BridgeHarness.run(configure: configure(export: 1000)) { harness in
                #expect(harness.runtime.devices[0].startingEnergy == first.counters)
                let client = try ModbusClient(port: harness.port)
                #expect(await offPool { client.read(400, 12) }.values.map(uint64s)?[1] == 1000)
                let polls = harness.state.current.goodPolls
                try await waitUntil("a few polls") { harness.state.current.goodPolls > polls + 3 }
            }
            let second = try #require(try load(path))
            #expect(second.counters.gridExport > first.counters.gridExport)
            #expect(second.counters.production > first.counters.production)

            // Third run, a new meter reading: applied.
            try await BridgeHarness.run(configure: configure(export: 2000)) { harness in
                #expect(harness.runtime.devices[0].startingEnergy.gridExport == 2000)
                #expect(harness.runtime.devices[0].startingEnergy.production == second.counters.production)
            }
            let third = try #require(try load(path))
            #expect(third.counters.gridExport >= 2000 && third.counters.gridExport < 2001)
            #expect(third.applied == [.gridExport: 2000])
        }
    }

    /// A reload applies a meter reading given anew, to a running device and to one it adds, once;
    /// the other counters go on, and a second reload with the same file changes nothing.
    @Test func aReloadAppliesNewMeterReadingsOnce() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let log = LogRecorder()
            try await BridgeHarness.run(
                simulators: [SimulatorConfiguration(replayCapture: true), SimulatorConfiguration(replayCapture: true)],
                logger: log.logger,
                configure: {
                    $0.energy.statePath = path
                    $0.energy.saveInterval = .milliseconds(100)
                    $0.devices.removeLast()  // unit 2 comes with the reload
                }
            ) { harness in
                let units = harness.devices.enumerated().map { index, device in
                    DeviceConfiguration(address: SocketAddress(host: "127.0.0.1", port: device.port), unit: UInt8(index + 1))
                }
                let client = try ModbusClient(port: harness.port)
                func counters(_ unit: Int32) async -> [UInt64]? {
                    await offPool { client.setUnit(unit); return client.read(400, 12).values.map(uint64s) }
                }
                try await waitUntil("unit 1 produces") { (await counters(1)?[2] ?? 0) > 0 }
                let production = try #require(await counters(1)?[2])

                var reloaded = harness.runtime.configuration
                reloaded.devices = units
                reloaded.energy.alignments = [1: [.gridExport: 5000], 2: [.gridImport: 7000]]
                let report = try harness.runtime.reload(reloaded)
                #expect(report.added == [2] && report.changed == [1])
                try await waitUntil("both readings served") {
                    let one = await counters(1), two = await counters(2)
                    return (5000..<5001).contains(one?[1] ?? 0) && two?[0] == 7000
                }
                #expect(try #require(await counters(1))[2] >= production, "unit 1's production went on")
                #expect(log.contains("energy counter set from the configuration"))
                try await waitUntil("the readings on disk") {
                    let stored = try? EnergyStateFile(path: path).load()
                    return stored?[1]?.applied == [.gridExport: 5000] && stored?[2]?.applied == [.gridImport: 7000]
                }

                // The same file again: nothing is set anew, nothing is replaced.
                // The capture exports: unit 1's export counter grows past the reading.
                func export() -> Double { harness.runtime.fleet.service(unit: 1)?.currentEnergy.gridExport ?? 0 }
                try await waitUntil("unit 1 exports past the reading") { export() > 5000 }
                let before = export()
                let again = try harness.runtime.reload(reloaded)
                #expect(again.added.isEmpty && again.changed.isEmpty)
                #expect(export() >= before)
            }
        }
    }

    /// A crash loses at most one save interval: the file follows the counters while running.
    @Test func theFileIsRewrittenWhileRunning() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            try await BridgeHarness.run(configure: { $0.energy.statePath = path; $0.energy.saveInterval = .milliseconds(100) }) { harness in
                try await waitUntil("production on disk") { ((try? load(path))?.counters.production ?? 0) > 0 }
                let saved = try #require(try load(path)).counters.production
                try await waitUntil("more production on disk") { ((try? load(path))?.counters.production ?? 0) > saved }
            }
        }
    }

    @Test func aCorruptFileIsReportedSetAsideAndReplaced() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            try Data("sec1000-energy 1\nunit=1 import=99999 export=0 production=0\n".utf8).write(to: URL(fileURLWithPath: path))
            let log = LogRecorder()
            try await BridgeHarness.run(logger: log.logger, configure: {
                $0.energy.statePath = path
                $0.energy.alignments = [1: [.gridImport: 777]]
            }) { harness in
                #expect(log.contains("energy state file not trusted"))
                #expect(log.contains("no checksum line"))
                #expect(log.contains("kept-as=\(path).corrupt-"))
                // The damaged file's 99999 Wh are not trusted; the command line's reading is.
                let client = try ModbusClient(port: harness.port)
                #expect(await offPool { client.read(400, 4) }.values.map(uint64s) == [777])
                try await waitUntil("a valid file in its place") { (try? load(path)) != nil }
            }
            let copies = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("energy.corrupt-") }
            #expect(copies.count == 1)
            #expect(try String(contentsOfFile: directory + "/" + (copies.first ?? ""), encoding: .utf8).contains("import=99999"))
            let replaced = try #require(try load(path))
            #expect(replaced.applied == [.gridImport: 777])
            #expect(replaced.counters.gridImport == 777)
        }
    }

    @Test func withoutAStateFileCountersStartFromTheGivenReadings() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: {
            $0.energy.alignments = [1: [.gridImport: 12, .gridExport: 34, .production: 56]]
        }) { harness in
            #expect(log.contains("kept in memory only"))
            #expect(harness.runtime.energyPersistence == nil)
            let client = try ModbusClient(port: harness.port)
            let values = try #require(await offPool { client.read(400, 12) }.values.map(uint64s))
            #expect(values[0] == 12 && values[1] == 34 && values[2] == 56)
        }
    }

    @Test func sustainedExportWithTheInvertersAtZeroWarnsOnce() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: {
            $0.signCheckAfter = .milliseconds(300)
            $0.filterCapacity = 1
        }) { harness in
            harness.device.setMeasurements(Measurements(
                voltages: [2300, 2300, 2300], currents: [100, 100, 100], powers: [-200, -150, -150], meterPower: -500,
                invertersPower: 0))
            let warning = "--grid-sign import-positive is probably inverted (try --grid-sign export-positive)"
            try await waitUntil("the warning") { log.contains(warning) }
            let polls = harness.state.current.goodPolls
            try await waitUntil("more polls") { harness.state.current.goodPolls > polls + 5 }
            #expect(log.messages.filter { $0.contains(warning) }.count == 1)
        }
    }

    @Test func theSignCheckNeedsZeroInvertersPowerAndExportToLast() {
        let t0 = ContinuousClock.now
        var check = GridSignCheck(sustainedFor: .seconds(600))
        let polls: [(seconds: Int64, grid: Int32, inverters: Int32)] = [
            (0, -3000, 3500),       // export while producing
            (100, 300, 0),          // import at night
            (800, -20, 0),          // meter noise, not export
            (1000, -300, 0),        // export at 0 W from here...
            (1300, 300, 0),         // ...but an import starts the clock again
            (1400, -300, 0),
            (1999, -300, 0),
            (2000, -300, 0),        // 600 s of export at 0 W: reported
            (5000, -300, 0),        // once per run
        ]
        let reported = polls.map { check.observe(gridPower: $0.grid, invertersPower: $0.inverters, at: t0 + .seconds($0.seconds)) }
        #expect(reported == [false, false, false, false, false, false, false, true, false])
    }

    @Test func analyzeNotesExportAtZeroInvertersPower() async throws {
        var night = capturedMeasurements
        night.invertersPower = 0
        night.meterPower = -400
        for (measurements, noted) in [(night, true), (capturedMeasurements, false)] {
            let hex = ResponseEncoder.encode(.measurements(measurements)).map { String(format: "%02X", $0) }.joined(separator: " ")
            let result = try await runSEC1000(["analyze", "--hex", hex])
            let output = result.everything
            #expect(result.status == 0, "\(output)")
            #expect(output.contains("note: the inverters report 0 W") == noted, "\(output)")
            #expect(output.contains("--grid-sign export-positive") == noted)
        }
    }

    @Test func theBridgeCommandTakesTheEnergyAndSerialNumberOptions() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let bridge = try await BridgeProcess.start([
                "--energy-state", path, "--energy-export-wh", "1234", "--energy-import-wh", "1=99",
                "--serial-number", "TEST-SN-1", "--energy-save-interval", "0.2",
            ])
            defer { bridge.stop() }
            let port = bridge.port
            try await waitUntil("a good poll behind the daemon", timeout: .seconds(20)) {
                await offPool { (try? ModbusClient(port: port))?.read(400, 12).values } != nil
            }
            let client = try ModbusClient(port: port)
            let counters = try #require(await offPool { client.read(400, 12) }.values.map(uint64s))
            #expect(counters[0] == 99 && counters[1] == 1234)
            // SN is model 1's point at offset 50: address 40052.
            let serial = try #require(await offPool { client.read(40052, 16) }.values)
            #expect(String(decoding: serial.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }.prefix { $0 != 0 }, as: UTF8.self) == "TEST-SN-1")
            kill(bridge.process.processIdentifier, SIGTERM)
            #expect(await bridge.exits(within: 10))
            #expect(bridge.process.terminationStatus == 0)
            let saved = try #require(try load(path))
            #expect(saved.applied == [.gridImport: 99, .gridExport: 1234])
            #expect(saved.counters.gridExport >= 1234)
        }
    }

    @Test(arguments: [
        ["--energy-import-wh", "2=5"],
        ["--energy-import-wh", "-5"],
        ["--energy-export-wh", "12.5"],
        ["--energy-production-wh", "0=5"],
        ["--energy-save-interval", "0"],
        ["--energy-state", ""],
        ["--serial-number", ""],
        ["--serial-number", String(repeating: "S", count: 33)],
        ["--serial-number", "3=SN"],
    ])
    func invalidEnergyOptionsExitWithUsageError(arguments: [String]) async throws {
        let result = try await runSEC1000(["bridge", "--simulate"] + arguments)
        #expect(result.status == 64, "\(arguments): \(result.everything)")
        #expect(result.errors.contains("Error:"), "\(result.everything)")
    }
}
