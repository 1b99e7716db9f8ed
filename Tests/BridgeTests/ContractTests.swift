import Bridge
import SEC1000Simulator
import TestSupport
import Testing

/// Every row of the answer table in the register-map contract, with its exact exception code.
@Suite("The register-map contract's answer table", .timeLimit(.minutes(1)))
struct ContractTests {
    @Test(arguments: [
        (20, 90),   // from block A into block B
        (26, 4),    // runs off the end of block A
        (28, 1),    // the hole after block A
        (99, 2),    // starts in the hole before block B
        (126, 4),   // runs off the end of block B
        (128, 1),
        (199, 1),
        (208, 3),   // runs off the end of block C
        (210, 1),
        (1000, 10),
        (65535, 1),
    ])
    func readsOutsideEveryBlockAreIllegalAddresses(address: Int, count: Int) async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            #expect(await offPool { client.read(address, count) } == .exception(0x02))
            #expect(await offPool { client.read(address, count, input: true) } == .exception(0x02))
        }
    }

    @Test(arguments: [0, 126, 2000, 65535])
    func countsOutsideOneTo125AreIllegalValues(count: Int) async throws {
        try await BridgeHarness.run { harness in
            for function: UInt8 in [0x03, 0x04] {
                let answer = await offPool {
                    rawExchange(port: harness.port, mbap([function, 0, 0, UInt8(count >> 8), UInt8(count & 0xFF)]))
                }
                #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, function | 0x80, 0x03])
            }
        }
    }

    @Test func readOfZeroRegistersOutsideTheMapIsAnIllegalValueNotAddress() async throws {
        // The count is judged before the address, as the Modbus specification orders its checks.
        try await BridgeHarness.run { harness in
            let answer = await offPool { rawExchange(port: harness.port, mbap([0x03, 0x10, 0x00, 0, 0])) }
            #expect(answer.last == 0x03)
        }
    }

    @Test func everyWriteIsRefusedAndChangesNothing() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            let before = await offPool { client.read(0, 28) }
            #expect(await offPool { client.writeRegister(0, 1) } == .exception(0x01))
            #expect(await offPool { client.writeRegisters(0, [1, 2, 3, 4]) } == .exception(0x01))
            #expect(await offPool { client.writeRegisters(200, [1]) } == .exception(0x01))
            #expect(await offPool { client.writeBit(0, true) } == .exception(0x01))
            // 15 (write coils), 22 (mask write), 23 (read/write registers) as raw frames.
            for pdu: [UInt8] in [
                [0x0F, 0, 0, 0, 8, 1, 0xFF],
                [0x16, 0, 0, 0xFF, 0xFF, 0, 0],
                [0x17, 0, 0, 0, 2, 0, 0, 0, 1, 2, 0, 9],
            ] {
                let answer = await offPool { rawExchange(port: harness.port, mbap(pdu)) }
                #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, pdu[0] | 0x80, 0x01], "function \(pdu[0])")
            }
            #expect(await offPool { client.read(0, 28) } == before)
        }
    }

    @Test(arguments: [UInt8(0x01), 0x02, 0x07, 0x08, 0x11, 0x14, 0x18, 0x2B, 0x41, 0x7F])
    func otherFunctionsAreIllegal(function: UInt8) async throws {
        try await BridgeHarness.run { harness in
            let answer = await offPool { rawExchange(port: harness.port, mbap([function, 0, 0, 0, 1])) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 3, 1, function | 0x80, 0x01])
        }
    }

    @Test func coilsAndDiscreteInputsThroughLibmodbus() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            #expect(await offPool { client.readBits(0, 8) } == .exception(0x01))
            #expect(await offPool { client.readBits(0, 8, discrete: true) } == .exception(0x01))
        }
    }

    @Test(arguments: [Int32(2), 7, 100, 247])
    func unknownUnitIdsAreUnavailablePaths(unit: Int32) async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port, unit: unit)
            #expect(await offPool { client.read(0, 2) } == .exception(0x0A))
            #expect(await offPool { client.read(200, 2) } == .exception(0x0A))
            #expect(await offPool { client.writeRegister(0, 1) } == .exception(0x0A))
        }
    }

    @Test(arguments: [UInt8(0), 255])
    func unitIds0And255ReachTheFirstDevice(unit: UInt8) async throws {
        try await BridgeHarness.run { harness in
            let answer = await offPool { rawExchange(port: harness.port, mbap(unit: unit, [0x03, 0, 18, 0, 2])) }
            #expect(answer == [0x12, 0x34, 0, 0, 0, 7, unit, 0x03, 4, 0xFF, 0xFF, 0xFE, 0xA1])
        }
    }

    @Test func beforeTheFirstGoodPollMeasurementsAreUnavailableButStatusIsServed() async throws {
        var silent = SimulatorConfiguration()
        silent.faults = FaultRates(hang: 1)
        try await BridgeHarness.run(simulators: [silent], waitForSample: false) { harness in
            let client = try ModbusClient(port: harness.port)
            #expect(await offPool { client.read(0, 28) } == .exception(0x0B))
            #expect(await offPool { client.read(100, 28, input: true) } == .exception(0x0B))
            let status = try #require(await offPool { client.read(200, 10) }.values)
            #expect(status[0] & 0b1000 != 0, "bit 3: no good sample yet")
            #expect(status[0] & 0b1 == 0, "bit 0: not fresh")
            #expect(status[1] == 65535, "data age without a sample")
            #expect(Array(status[7...8]) == [0, 0], "last good sample time without a sample")
        }
    }

    @Test func statusBlockReportsPollsAndInterval() async throws {
        try await BridgeHarness.run(configure: { $0.interval = .milliseconds(1600); $0.staleAfter = .seconds(5) }) { harness in
            let client = try ModbusClient(port: harness.port)
            let status = try #require(await offPool { client.read(200, 10, input: true) }.values)
            #expect(status[0] == 0b1, "fresh, nothing else")
            #expect(status[1] <= 1)
            #expect(UInt32(status[2]) << 16 | UInt32(status[3]) >= 1, "good polls")
            #expect(Array(status[4...6]) == [0, 0, 0], "no failed poll, no error")
            let now = UInt32(Date.now.timeIntervalSince1970)
            let sampleTime = UInt32(status[7]) << 16 | UInt32(status[8])
            #expect(sampleTime <= now && sampleTime + 5 >= now)
            #expect(status[9] == 2, "1.6 s rounds to 2")
        }
    }
}

import Foundation
