#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Locking
import SEC1000Simulator
import Sockets
import TestSupport
import Testing
import Threading

/// SIGHUP re-reads `--config` (issue 13): devices added and removed while a SCADA master reads
/// on one connection, which is never closed and never sees 0x0B for the device that stays; its
/// energy counters go on; a file that fails the check changes nothing.
@Suite("Reload on SIGHUP", .serialized, .timeLimit(.minutes(2)))
struct ReloadTests {
    static func file(devices: [(unit: Int, port: UInt16)], statePath: String, extra: String = "") -> String {
        var text = """
            listen: 127.0.0.1:0
            interval: 0.2
            min-gap: 0
            retry-wait: 0
            log-level: info
            energy-state: \(statePath)
            energy-save-interval: 0.2
            \(extra)
            devices:

            """
        for device in devices {
            text += "  - name: site\(device.unit)\n    host: 127.0.0.1\n    port: \(device.port)\n    unit: \(device.unit)\n"
        }
        return text
    }

    @Test func devicesComeAndGoWhileAMasterReadsOnOneConnection() async throws {
        let simulators = try (0..<3).map { _ in
            try SimulatedDevice(configuration: SimulatorConfiguration(listen: SocketAddress(host: "127.0.0.1", port: 0), replayCapture: true))
        }
        simulators.forEach { $0.start() }
        defer { simulators.forEach { $0.stop() } }
        try await withTemporaryDirectory { directory in
            let path = directory + "/bridge.yaml", state = directory + "/energy"
            func write(_ text: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }
            try write(Self.file(devices: [(1, simulators[0].port)], statePath: state))
            let errors = Pipe()
            let log = StreamText(errors.fileHandleForReading)
            let bridge = try await BridgeProcess.start(base: ["bridge", "--config", path], errors: errors)
            defer { bridge.stop() }
            let port = bridge.port
            @Sendable func unitServes(_ unit: Int32) async -> Bool {
                await offPool { () -> Bool in
                    guard let client = try? ModbusClient(port: port) else { return false }
                    client.setUnit(unit)
                    return client.read(0, 28).values != nil
                }
            }
            @Sendable func production(_ unit: Int32) async -> UInt64? {
                await offPool { () -> UInt64? in
                    guard let client = try? ModbusClient(port: port) else { return nil }
                    client.setUnit(unit)
                    return client.read(400, 12).values.map(uint64s)?[2]
                }
            }
            try await waitUntil("unit 1 served", timeout: .seconds(20)) { await unitServes(1) }

            // The master: one connection, unit 1's block A every 50 ms, for the whole test.
            let stop = StopFlag()
            let master = BlockingThreadResult { () -> (answered: Int, exceptions: [UInt8], failed: Int) in
                guard let client = try? ModbusClient(port: port) else { return (0, [], -1) }
                var answered = 0, exceptions: [UInt8] = [], failed = 0
                while !stop.isRaised {
                    switch client.read(0, 28) {
                    case .registers: answered += 1
                    case .exception(let code): exceptions.append(code)
                    default: failed += 1
                    }
                    pace(.milliseconds(50))
                }
                return (answered, exceptions, failed)
            }
            try await waitUntil("unit 1's first energy step", timeout: .seconds(10)) { (await production(1) ?? 0) > 0 }
            let before = try #require(await production(1))

            // Add units 2 and 3.
            try write(Self.file(devices: [(1, simulators[0].port), (2, simulators[1].port), (3, simulators[2].port)], statePath: state))
            kill(bridge.process.processIdentifier, SIGHUP)
            try await waitUntil("units 2 and 3 served", timeout: .seconds(10)) {
                let two = await unitServes(2)
                let three = await unitServes(3)
                return two && three
            }
            #expect(log.text.contains("configuration reloaded") && log.text.contains("added-units=[2, 3]"), "\(log.text)")

            // Remove unit 2, keep 3.
            try write(Self.file(devices: [(1, simulators[0].port), (3, simulators[2].port)], statePath: state))
            kill(bridge.process.processIdentifier, SIGHUP)
            try await waitUntil("unit 2 gone", timeout: .seconds(10)) {
                await offPool { () -> Bool in
                    guard let client = try? ModbusClient(port: port) else { return false }
                    client.setUnit(2)
                    return client.read(0, 28) == .exception(0x0A)
                }
            }
            #expect(await unitServes(3))

            // A file that fails the check (an unknown key, and unit 4 added): nothing changes.
            try write(Self.file(devices: [(1, simulators[0].port), (4, simulators[1].port)], statePath: state, extra: "intervall: 5"))
            kill(bridge.process.processIdentifier, SIGHUP)
            try await waitUntil("the refusal in the log", timeout: .seconds(10)) { log.text.contains("configuration not reloaded") }
            #expect(log.text.contains("intervall"), "the log names the unknown key")
            #expect(await unitServes(3), "unit 3 still served")
            let four = await unitServes(4)
            #expect(!four, "unit 4 not added")

            // Unit 1 ran on untouched: its counters never restarted, and they grow.
            let after = try #require(await production(1))
            #expect(after >= before, "unit 1's counters kept: \(before) -> \(after)")
            try await waitUntil("unit 1's counter to grow", timeout: .seconds(10)) { (await production(1) ?? 0) > before }
            stop.raise()
            let reads = await offPool { master.value() }
            #expect(reads.failed == 0 && reads.exceptions.isEmpty, "the master's connection was never closed, never 0x0B: \(reads)")
            #expect(reads.answered > 20)
            kill(bridge.process.processIdentifier, SIGTERM)
            #expect(await bridge.exits(within: 10))
            #expect(bridge.process.terminationStatus == 0)
        }
    }

    @Test func withoutAConfigurationFileSIGHUPIsLoggedAndIgnored() async throws {
        let errors = Pipe()
        let log = StreamText(errors.fileHandleForReading)
        let bridge = try await BridgeProcess.start(["--log-level", "info"], errors: errors)
        defer { bridge.stop() }
        // A SIGHUP before the bridge traps it is ignored silently: send until one is trapped.
        try await waitUntil("the log line", timeout: .seconds(10)) {
            kill(bridge.process.processIdentifier, SIGHUP)
            return log.text.contains("no configuration file (--config) to reload")
        }
        #expect(bridge.process.isRunning)
    }
}
