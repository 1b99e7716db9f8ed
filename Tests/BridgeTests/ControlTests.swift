import Bridge
import Foundation
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// Block D writes over loopback against the simulator: every path with its exact exception,
/// register 309 and the audit line.
@Suite("Export-limit control through Modbus writes", .timeLimit(.minutes(1)))
struct ControlTests {
    static func enabled(_ configuration: inout BridgeConfiguration) {
        configuration.control = ControlConfiguration(
            enabled: true, allow: [try! AddressRange(parsing: "127.0.0.0/8")], writeTimeout: .seconds(5))
    }

    /// FC16 writing 300-305: limit, capacity, control mode, meter mode.
    static func writeAll(limit: UInt32, capacity: UInt32, mode: UInt16, meterMode: UInt16) -> [UInt8] {
        let words: [UInt16] = [UInt16(limit >> 16), UInt16(limit & 0xFFFF), UInt16(capacity >> 16), UInt16(capacity & 0xFFFF), mode, meterMode]
        return mbap([0x10, 0x01, 0x2C, 0x00, 0x06, 0x0C] + words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
    }

    func blockD(_ port: UInt16) async throws -> [UInt16] {
        try #require(await offPool { (try? ModbusClient(port: port))?.read(300, 12) }?.values)
    }

    /// The sets the device received, in the order they were sent: records are kept in the order
    /// their connections ended, which a busy machine may swap for two quick transactions.
    func sets(_ device: SimulatedDevice) -> [Request] {
        device.records.sorted { $0.opened < $1.opened }.compactMap(\.request)
            .filter { $0 != .readMeasurements && $0 != .readExportSettings }
    }

    @Test func aConfirmedWriteChangesTheDeviceAndAnswersNormally() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: Self.enabled) { harness in
            let request = Self.writeAll(limit: 3000, capacity: 9000, mode: 3, meterMode: 1)
            let answer = await offPool { rawExchange(port: harness.port, request, timeout: .seconds(10)) }
            // The normal FC16 answer: address 300, 6 registers.
            #expect(answer == [0x12, 0x34, 0, 0, 0, 6, 1, 0x10, 0x01, 0x2C, 0x00, 0x06])
            #expect(harness.device.settings == ExportSettings(mode: .byValue, totalCapacity: 9000, ctRatio: 1, exportLimit: 3000))
            #expect(harness.device.meterMode == .eachPhase)
            let registers = try await blockD(harness.port)
            #expect(Array(registers[0..<6]) == [0, 3000, 0, 9000, 3, 1])
            #expect(registers[8] <= 1, "settings just read back")
            #expect(registers[9] == 1, "309: confirmed")
            let audit = log.messages.first { $0.contains("control write ") || $0.hasPrefix("notice control write") }
            let line = try #require(audit)
            #expect(line.contains("client=127.0.0.1:") && line.contains("unit=1") && line.contains("registers=300-305"))
            #expect(line.contains("old=mode=3 limit=5000W capacity=8000W") && line.contains("new=limit=3000W capacity=9000W mode=3 meter-mode=1"))
            #expect(line.contains("outcome=confirmed"))
        }
    }

    @Test func aSingleRegisterWriteSwitchesTheControlSource() async throws {
        try await BridgeHarness.run(configure: Self.enabled) { harness in
            let answer = await offPool { rawExchange(port: harness.port, mbap([0x06, 0x01, 0x30, 0x00, 0x01]), timeout: .seconds(10)) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 6, 1, 0x06, 0x01, 0x30, 0x00, 0x01])
            #expect(harness.device.settings.mode == .dred)
            // DRED on first, then the previous source (by value) off: never without limitation.
            // The simulator records a connection once its client has closed it, a moment after the answer.
            try await waitUntil("both sets recorded") { sets(harness.device).count >= 2 }
            #expect(sets(harness.device) == [.setControl(.dred, on: true), .setControl(.byValue, on: false)])
        }
    }

    @Test(arguments: [
        (writeAll(limit: 9000, capacity: 8000, mode: 3, meterMode: 2), "above the total capacity"),
        (mbap([0x10, 0x01, 0x2C, 0x00, 0x02, 0x04, 0x00, 0x00, 0x23, 0x28]), "above the total capacity"),  // 9000 W > 8000 W held
        (mbap([0x10, 0x01, 0x2C, 0x00, 0x02, 0x04, 0x00, 0x00, 0x0B, 0xB8]), "meter mode is not known"),   // 3000 W, meter mode unknown
    ])
    func invalidValuesAreRefusedAndTheDeviceIsUntouched(request: [UInt8], reason: String) async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: Self.enabled) { harness in
            let answer = await offPool { rawExchange(port: harness.port, request, timeout: .seconds(10)) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, 0x90, 0x03])
            #expect(sets(harness.device).isEmpty, "nothing was sent to the device")
            #expect(harness.device.settings.exportLimit == 5000)
            let registers = try await blockD(harness.port)
            #expect(registers[9] == 2, "309: refused by validation")
            #expect(log.messages.contains { $0.contains("control write failed") && $0.contains(reason) })
        }
    }

    /// With the meter mode configured (`--meter-mode`, or per device), register 305 shows it from
    /// the start and a limit written alone is carried out with it; a device's own key wins.
    @Test(arguments: [(MeterMode?.none, MeterMode.sumOfPhases), (MeterMode.eachPhase, MeterMode.sumOfPhases)])
    func aConfiguredMeterModeLetsTheLimitBeWrittenAlone(deviceMode: MeterMode?, bridgeMode: MeterMode) async throws {
        let expected = deviceMode ?? bridgeMode
        try await BridgeHarness.run(configure: {
            Self.enabled(&$0)
            $0.control.meterMode = bridgeMode
            $0.devices[0].meterMode = deviceMode
        }) { harness in
            let registers = try await blockD(harness.port)
            #expect(registers[5] == UInt16(expected.rawValue), "305 shows the configured meter mode")
            // 300-301 only: 3000 W.
            let answer = await offPool {
                rawExchange(port: harness.port, mbap([0x10, 0x01, 0x2C, 0x00, 0x02, 0x04, 0x00, 0x00, 0x0B, 0xB8]), timeout: .seconds(10))
            }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 6, 1, 0x10, 0x01, 0x2C, 0x00, 0x02])
            #expect(harness.device.settings.exportLimit == 3000)
            #expect(harness.device.meterMode == expected)
            #expect(sets(harness.device).first == .setExportLimit(totalCapacity: 8000, exportLimit: 3000, meterMode: expected))
        }
    }

    @Test func theOperatorMaximumBoundsTheLimit() async throws {
        try await BridgeHarness.run(configure: {
            Self.enabled(&$0)
            $0.control.limits = ControlLimits(maxExportLimit: 4000)
        }) { harness in
            let refused = await offPool { rawExchange(port: harness.port, Self.writeAll(limit: 4001, capacity: 8000, mode: 3, meterMode: 2), timeout: .seconds(10)) }
            #expect(refused.suffix(2) == [0x90, 0x03])
            let accepted = await offPool { rawExchange(port: harness.port, Self.writeAll(limit: 4000, capacity: 8000, mode: 3, meterMode: 2), timeout: .seconds(10)) }
            #expect(accepted.count == 12 && accepted[7] == 0x10)
            #expect(harness.device.settings.exportLimit == 4000)
        }
    }

    @Test func aDeviceThatDoesNotApplyTheChangeIsReported() async throws {
        var ignoring = SimulatorConfiguration(replayCapture: true)
        ignoring.ignoreSets = true
        try await BridgeHarness.run(simulators: [ignoring], configure: Self.enabled) { harness in
            let answer = await offPool { rawExchange(port: harness.port, Self.writeAll(limit: 2000, capacity: 8000, mode: 3, meterMode: 2), timeout: .seconds(10)) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, 0x90, 0x04])
            try await waitUntil("the set recorded") { !sets(harness.device).isEmpty }
            let registers = try await blockD(harness.port)
            #expect(registers[9] == 3, "309: device did not confirm")
            #expect(registers[1] == 5000, "block D shows what the device holds")
        }
    }

    @Test func anUnreachableDeviceIsAGatewayFailure() async throws {
        var dropping = SimulatorConfiguration(replayCapture: true)
        dropping.dropSets = true
        try await BridgeHarness.run(simulators: [dropping], configure: {
            Self.enabled(&$0)
            $0.control.writeTimeout = .seconds(2)
        }) { harness in
            let answer = await offPool { rawExchange(port: harness.port, mbap([0x06, 0x01, 0x30, 0x00, 0x00]), timeout: .seconds(10)) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, 0x86, 0x0B])
            let registers = try await blockD(harness.port)
            #expect(registers[9] == 4, "309: device unreachable")
        }
    }

    @Test func aSlowDeviceHitsTheWriteTimeout() async throws {
        try await BridgeHarness.run(configure: {
            Self.enabled(&$0)
            $0.control.writeTimeout = .milliseconds(700)
        }) { harness in
            harness.device.setFaults(FaultRates(hang: 1))
            let started = ContinuousClock.now
            let answer = await offPool { rawExchange(port: harness.port, mbap([0x06, 0x01, 0x30, 0x00, 0x00]), timeout: .seconds(10)) }
            #expect(answer.suffix(2) == [0x86, 0x0B])
            #expect(ContinuousClock.now - started < .seconds(5), "bounded by --write-timeout, not the device")
        }
    }

    @Test func writesAreRefusedUnlessEnabled() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger) { harness in
            let answer = await offPool { rawExchange(port: harness.port, Self.writeAll(limit: 1000, capacity: 8000, mode: 3, meterMode: 2)) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, 0x90, 0x01])
            #expect(sets(harness.device).isEmpty)
            #expect(log.messages.contains { $0.contains("control write refused") && $0.contains("not enabled") })
        }
    }

    @Test func writesAreRefusedFromClientsOutsideTheAllowList() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: {
            $0.control = ControlConfiguration(enabled: true, allow: [try! AddressRange(parsing: "10.0.0.0/8")])
        }) { harness in
            let answer = await offPool { rawExchange(port: harness.port, mbap([0x06, 0x01, 0x30, 0x00, 0x00])) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, 0x86, 0x01])
            #expect(sets(harness.device).isEmpty)
            #expect(log.messages.contains { $0.contains("control write refused") && $0.contains("client=127.0.0.1") && $0.contains("--control-allow") })
        }
    }

    @Test(arguments: [
        (mbap([0x06, 0x01, 0x2C, 0x00, 0x00]), UInt8(0x03)),              // FC06 to the high word of the limit
        (mbap([0x06, 0x01, 0x2D, 0x0B, 0xB8]), 0x03),                     // FC06 to the low word
        (mbap([0x10, 0x01, 0x2D, 0x00, 0x02, 0x04, 0, 0, 0, 1]), 0x03),   // 301-302: halves of two values
        (mbap([0x10, 0x01, 0x2C, 0x00, 0x03, 0x06, 0, 0, 0, 1, 0, 0]), 0x03),  // 300-302: half the capacity
        (mbap([0x06, 0x01, 0x30, 0x00, 0x04]), 0x03),                     // control mode 4 is not known
        (mbap([0x06, 0x01, 0x31, 0x00, 0x00]), 0x03),                     // meter mode 0 cannot be written
        (mbap([0x06, 0x01, 0x32, 0x00, 0x01]), 0x02),                     // 306: the CT ratio is read-only
        (mbap([0x06, 0x01, 0x35, 0x00, 0x00]), 0x02),                     // 309 is read-only
        (mbap([0x06, 0x00, 0x00, 0x00, 0x00]), 0x02),                     // block A is not writable
        (mbap([0x10, 0x01, 0x2C, 0x00, 0x02, 0x03, 0, 0, 0]), 0x03),      // byte count disagrees
        (mbap([0x05, 0x01, 0x2C, 0xFF, 0x00]), 0x01),                     // coils do not exist
    ] as [([UInt8], UInt8)])
    func malformedOrMisplacedWritesGetTheirException(request: [UInt8], code: UInt8) async throws {
        try await BridgeHarness.run(configure: Self.enabled) { harness in
            let answer = await offPool { rawExchange(port: harness.port, request) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, request[7] | 0x80, code])
            #expect(sets(harness.device).isEmpty)
        }
    }

    /// While a write waits on a slow device, every other client keeps being served.
    @Test func readsAreServedWhileAWriteWaits() async throws {
        try await BridgeHarness.run(configure: {
            Self.enabled(&$0)
            $0.staleAfter = .seconds(30)
            $0.timeouts = Timeouts(connect: .seconds(1), answer: .seconds(3))
            $0.control.writeTimeout = .seconds(20)
        }) { harness in
            harness.device.setFaults(FaultRates(slow: 1, delay: .milliseconds(600)))
            let port = harness.port
            async let write = offPool { rawExchange(port: port, mbap([0x06, 0x01, 0x30, 0x00, 0x02]), timeout: .seconds(15)) }
            try await waitUntil("the write to reach the device") {
                harness.device.records.contains { $0.request == .readExportSettings } || harness.device.maximumConcurrency > 0
            }
            let worst = await offPool { () -> Duration? in
                guard let client = try? ModbusClient(port: port) else { return nil }
                var worst = Duration.zero
                for _ in 0..<20 {
                    let start = ContinuousClock.now
                    guard client.read(200, 10).values != nil, client.read(0, 28).values != nil else { return nil }
                    worst = max(worst, .now - start)
                }
                return worst
            }
            let measured = try #require(worst)
            #expect(measured < .milliseconds(250), "reads do not wait for the device")
            #expect(await write.suffix(5) == [0x06, 0x01, 0x30, 0x00, 0x02])
            #expect(harness.device.settings.mode == .rcr)
            #expect(harness.device.maximumConcurrency == 1, "writes and polls never overlap on the device")
        }
    }

    /// A request pipelined behind a write on the same connection is answered after it, in order.
    @Test func requestsBehindAWriteKeepTheirOrder() async throws {
        try await BridgeHarness.run(configure: Self.enabled) { harness in
            let port = harness.port
            let answers = await offPool { () -> [[UInt8]] in
                guard let stream = try? TCPStreamBox(port: port) else { return [] }
                let write: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 0x06, 0x01, 0x30, 0x00, 0x00]
                let read: [UInt8] = [0, 2, 0, 0, 0, 6, 1, 0x03, 0x01, 0x30, 0x00, 0x01]
                return stream.exchange(write + read, answers: 2)
            }
            #expect(answers == [[0, 1, 0, 0, 0, 6, 1, 0x06, 0x01, 0x30, 0x00, 0x00], [0, 2, 0, 0, 0, 5, 1, 0x03, 2, 0, 0]])
        }
    }

    @Test func blockDBeforeAnySettingsReadSaysNever() async throws {
        var silent = SimulatorConfiguration()
        silent.faults = FaultRates(hang: 1)
        try await BridgeHarness.run(simulators: [silent], waitForSample: false) { harness in
            let registers = try await blockD(harness.port)
            #expect(registers == [0, 0, 0, 0, 0, 0, 0, 0, 65535, 0, 0, 0])
        }
    }
}

/// One connection that sends bytes and reads whole Modbus answers.
final class TCPStreamBox: @unchecked Sendable {
    // Used by one thread at a time, inside one `offPool` call.
    private let stream: TCPStream

    init(port: UInt16) throws {
        stream = try TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: port), timeout: .seconds(2))
    }

    func exchange(_ bytes: [UInt8], answers: Int, timeout: Duration = .seconds(10)) -> [[UInt8]] {
        let deadline = ContinuousClock.now + timeout
        guard (try? stream.write(bytes, deadline: deadline)) != nil else { return [] }
        return (0..<answers).compactMap { _ in
            guard let header = try? stream.read(exactly: 6, deadline: deadline),
                  let rest = try? stream.read(exactly: Int(header[5]), deadline: deadline) else { return nil }
            return header + rest
        }
    }
}

import Sockets
