import Bridge
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// Block A for the real capture: the raw integers, then house load, import and export.
let capturedBlockA: [Int32] = [2410, 2404, 2409, 480, 390, 508, 295, -114, -532, -351, 3386, 3035, 0, 351]

@Suite("Serving values through libmodbus's own client", .timeLimit(.minutes(1)))
struct ServingTests {
    @Test(arguments: [false, true])
    func blockAHoldsTheCapturedIntegers(input: Bool) async throws {
        try await BridgeHarness.run { harness in
            let outcome = await offPool { try? ModbusClient(port: harness.port).read(0, 28, input: input) }
            let registers = try #require(outcome?.values)
            #expect(int32s(registers) == capturedBlockA)
            // High word first on the wire: v1 = 2410 = 0x0000_096A.
            #expect(Array(registers.prefix(2)) == [0x0000, 0x096A])
            // p2 = -114 = 0xFFFF_FF8E.
            #expect(Array(registers[14..<16]) == [0xFFFF, 0xFF8E])
        }
    }

    @Test(arguments: [false, true])
    func blockBHoldsTheSameValuesInEngineeringUnits(input: Bool) async throws {
        try await BridgeHarness.run { harness in
            let outcome = await offPool { try? ModbusClient(port: harness.port).read(100, 28, input: input) }
            let values = floats(try #require(outcome?.values))
            let expected: [Float] = [241.0, 240.4, 240.9, 4.80, 3.90, 5.08, 0.295, -0.114, -0.532, -0.351, 3.386, 3.035, 0, 0.351]
            #expect(values == expected)
        }
    }

    @Test func partialReadsInsideABlockAreServed() async throws {
        try await BridgeHarness.run { harness in
            let outcome = await offPool { try? ModbusClient(port: harness.port).read(18, 4) }
            let registers = try #require(outcome?.values)
            #expect(int32s(registers) == [-351, 3386])
            let single = await offPool { try? ModbusClient(port: harness.port).read(21, 1, input: true) }
            #expect(single == .registers([3386]))
        }
    }

    @Test func exportPositiveDevicesAreNormalizedToImportPositive() async throws {
        try await BridgeHarness.run(configure: { $0.gridSign = .exportPositive }) { harness in
            let outcome = await offPool { try? ModbusClient(port: harness.port).read(0, 28) }
            let values = int32s(try #require(outcome?.values))
            #expect(Array(values[6...]) == [-295, 114, 532, 351, 3386, 3737, 351, 0])
            #expect(Array(values[..<6]) == Array(capturedBlockA[..<6]))
        }
    }

    @Test func valuesFollowTheDeviceFromPollToPoll() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            for (index, meter) in [Int32(-1500), 2200, 0].enumerated() {
                // L1 carries up to 2180 W: 10 A at 230 V, or the bridge refuses the reading as implausible.
                let m = Measurements(
                    voltages: [2300, 2310, 2320], currents: [1000, 200, 300 + Int32(index)],
                    powers: [meter - 20, 10, 10], meterPower: meter, invertersPower: 4000 + Int32(index))
                harness.device.setMeasurements(m)
                try await waitUntil("the bridge to serve meter power \(meter)") {
                    await offPool { client.read(18, 4) }.values.map(int32s) == [meter, 4000 + Int32(index)]
                }
                let blockB = floats(try #require(await offPool { client.read(100, 28) }.values))
                #expect(blockB[9] == Float(Double(meter) / 1000))
            }
        }
    }

    @Test func zeroInvertersPowerIsReplacedAndFlagged() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            var m = capturedMeasurements
            m.invertersPower = 0
            let polls = harness.state.current.goodPolls
            harness.device.setMeasurements(m)
            try await waitUntil("a poll of the zero value") { harness.state.current.goodPolls > polls + 1 }
            let values = int32s(try #require(await offPool { client.read(0, 28) }.values))
            #expect(values[10] == 3386)
            let status = try #require(await offPool { client.read(200, 1) }.values)
            #expect(status[0] & 0b100 != 0)
        }
    }
}
