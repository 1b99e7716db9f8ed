import Bridge
import Foundation
import Logging
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import SunSpec
import TestSupport
import Testing

/// Reads the whole SunSpec image (231 registers) in two requests.
func readImage(_ client: ModbusClient, input: Bool = false) async -> [UInt16]? {
    guard let first = await offPool({ client.read(40000, 125, input: input) }).values,
          let second = await offPool({ client.read(40125, 106, input: input) }).values
    else { return nil }
    return first + second
}

/// A point of a model inside the image, by name (layouts are checked against SunSpec's definitions in SunSpecTests).
func point(_ image: [UInt16], model offset: Int, _ layout: ModelLayout, _ name: String) throws -> [UInt16] {
    let point = try #require(layout.point(name))
    return Array(image[(offset + point.offset)..<(offset + point.offset + point.size)])
}

func uint32(_ registers: ArraySlice<UInt16>) -> UInt32 {
    registers.reduce(UInt32(0)) { $0 << 16 | UInt32($1) }
}

func uint64s(_ registers: [UInt16]) -> [UInt64] {
    stride(from: 0, to: registers.count - 3, by: 4).map { index in
        registers[index..<(index + 4)].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
    }
}

@Suite("SunSpec image, block E and device identification over Modbus", .timeLimit(.minutes(1)))
struct SunSpecServingTests {
    @Test(arguments: [false, true])
    func theImageHoldsTheCapture(input: Bool) async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            let image = try #require(await readImage(client, input: input))
            #expect(Array(image[0..<4]) == [0x5375, 0x6E53, 1, 66])
            let inverter = SunSpecImage.inverterOffset
            let meter = SunSpecImage.meterOffset
            #expect(try point(image, model: inverter, .inverterThreePhase, "W") == [3386])
            #expect(try point(image, model: inverter, .inverterThreePhase, "W_SF") == [0])
            #expect(try point(image, model: inverter, .inverterThreePhase, "St") == [4])
            #expect(try point(image, model: meter, .meterWye, "W") == [UInt16(bitPattern: -351)])
            #expect(try point(image, model: meter, .meterWye, "WphC") == [UInt16(bitPattern: -532)])
            #expect(try point(image, model: meter, .meterWye, "AphB") == [390])
            #expect(try point(image, model: meter, .meterWye, "A_SF") == [UInt16(bitPattern: -2)])
            #expect(try point(image, model: meter, .meterWye, "PhVphA") == [2410])
            #expect(try point(image, model: meter, .meterWye, "Hz") == [0x8000])
            #expect(Array(image[229..<231]) == [0xFFFF, 0])
            // Both functions serve the same image, but for the inverters' energy counter, which may
            // have reached its next Wh between the two reads (models 1 and 103: the first 122 registers).
            let other = try #require(await readImage(client, input: !input))
            let energy = try #require(ModelLayout.inverterThreePhase.point("WH"))
            let counter = (inverter + energy.offset)..<(inverter + energy.offset + energy.size)
            func withoutCounter(_ registers: [UInt16]) -> [UInt16] {
                Array(registers[0..<counter.lowerBound] + registers[counter.upperBound..<122])
            }
            #expect(withoutCounter(other) == withoutCounter(image))
            #expect(uint32(other[counter]) >= uint32(image[counter]))
        }
    }

    @Test func theCommonModelNamesEachDevice() async throws {
        try await BridgeHarness.run(
            simulators: [SimulatorConfiguration(replayCapture: true), SimulatorConfiguration(replayCapture: true)],
            configure: { $0.devices[1].serialNumber = "GW-SEC-0002" }
        ) { harness in
            let client = try ModbusClient(port: harness.port)
            let common = SunSpecImage.commonOffset
            for (unit, serial) in [(Int32(1), "SEC1000-127.0.0.1-\(harness.devices[0].port)"), (2, "GW-SEC-0002")] {
                client.setUnit(unit)
                let model = try #require(await offPool { client.read(40000 + common, 68) }.values)
                #expect(Array(model[0..<2]) == [1, 66])
                let text = { (name: String) throws -> String in
                    let registers = try point(model, model: 0, .common, name)
                    return String(decoding: registers.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }.prefix { $0 != 0 }, as: UTF8.self)
                }
                #expect(try text("Mn") == "GoodWe")
                #expect(try text("Md") == "SEC1000")
                #expect(try text("Opt") == "sec1000 bridge")
                #expect(try text("Vr") == bridgeVersion)
                #expect(try text("SN") == serial)
                #expect(try point(model, model: 0, .common, "DA") == [UInt16(unit)])
            }
        }
    }

    /// Scanners find the device while its data are stale; models 103 and 203 and block E follow
    /// the contract (0x0B), and so does a read that spans static and live parts.
    @Test func staticPartsAreServedWhileDataAreStale() async throws {
        var silent = SimulatorConfiguration()
        silent.faults = FaultRates(hang: 1)
        try await BridgeHarness.run(simulators: [silent], waitForSample: false) { harness in
            let client = try ModbusClient(port: harness.port)
            for input in [false, true] {
                #expect(await offPool { client.read(40000, 3, input: input) } == .registers([0x5375, 0x6E53, 1]))
                #expect(await offPool { client.read(40000, 70, input: input) }.values?.count == 70)
                #expect(await offPool { client.read(40229, 2, input: input) } == .registers([0xFFFF, 0]))
                for (address, count) in [(40070, 1), (40069, 2), (40060, 20), (40122, 107), (40228, 2), (40000, 125), (400, 12)] {
                    #expect(await offPool { client.read(address, count, input: input) } == .exception(0x0B), "\(address) +\(count)")
                }
            }
        }
    }

    @Test func readsSpanningStaticAndLivePartsAreServedWhenFresh() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            let span = try #require(await offPool { client.read(40060, 20) }.values)
            #expect(Array(span[10..<12]) == [103, 50])
        }
    }

    @Test(arguments: [(40231, 1), (40229, 3), (39999, 2), (39990, 1), (40200, 125), (412, 1), (398, 4), (411, 2), (312, 1)])
    func readsPastTheNewBlocksAreIllegalAddresses(address: Int, count: Int) async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port)
            #expect(await offPool { client.read(address, count) } == .exception(0x02))
        }
    }

    @Test func unknownUnitsDoNotReachTheImage() async throws {
        try await BridgeHarness.run { harness in
            let client = try ModbusClient(port: harness.port, unit: 9)
            #expect(await offPool { client.read(40000, 2) } == .exception(0x0A))
            #expect(await offPool { client.read(400, 4) } == .exception(0x0A))
        }
    }

    @Test func blockEEncodesUInt64HighWordFirst() {
        let counters = EnergyCounters(gridImport: 12.999, gridExport: 0.5, production: Double(1 << 40) + 5.75)
        #expect(RegisterMap.energyRegisters(counters) == [0, 0, 0, 12, 0, 0, 0, 0, 0, 0x0100, 0, 5])
    }

    /// 3.6 MW of export and 7.2 MW of production count 1 and 2 Wh per millisecond: block E and
    /// the SunSpec accumulators move visibly from poll to poll, and agree with the poll they came from.
    @Test func countersAreServedInBlockEAndTheSunSpecModels() async throws {
        try await BridgeHarness.run(configure: {
            $0.energy.alignments = [1: [.gridImport: 5000]]
        }) { harness in
            let client = try ModbusClient(port: harness.port)
            harness.device.setMeasurements(Measurements(
                // 1.2 MW a phase needs 6 kA at 230 V to be a plausible reading.
                voltages: [2300, 2300, 2300], currents: [600_000, 600_000, 600_000], powers: [-1_200_000, -1_200_000, -1_200_000],
                meterPower: -3_600_000, invertersPower: 7_200_000))
            try await waitUntil("exported energy") {
                await offPool { client.read(400, 12) }.values.map { uint64s($0)[1] > 1000 } ?? false
            }
            let before = try #require(harness.state.current.sample?.energy)
            let blockE = uint64s(try #require(await offPool { client.read(400, 12, input: true) }.values))
            let after = try #require(harness.state.current.sample?.energy)
            #expect(blockE[0] == 5000, "import stays at the aligned value while exporting")
            #expect((before.wholeWh(.gridExport)...after.wholeWh(.gridExport)).contains(blockE[1]))
            #expect((before.wholeWh(.production)...after.wholeWh(.production)).contains(blockE[2]))
            #expect(blockE[2] > blockE[1], "production counts twice as fast")

            // Model 203 and model 103 from one read each: value and scale factor from the same poll.
            let meter = try #require(await offPool { client.read(40122, 107) }.values)
            let imported = try point(meter, model: 0, .meterWye, "TotWhImp")
            #expect(UInt32(imported[0]) << 16 | UInt32(imported[1]) == 5000)
            #expect(try point(meter, model: 0, .meterWye, "TotWh_SF") == [0])
            // 3.6 MW does not fit int16 in W: the scale factor rises.
            let watts = Int16(bitPattern: try point(meter, model: 0, .meterWye, "W")[0])
            let scale = Int16(bitPattern: try point(meter, model: 0, .meterWye, "W_SF")[0])
            #expect(Double(watts) * pow(10, Double(scale)) == -3_600_000)
            let inverter = try #require(await offPool { client.read(40070, 52) }.values)
            let wh = try point(inverter, model: 0, .inverterThreePhase, "WH")
            #expect(UInt64(wh[0]) << 16 | UInt64(wh[1]) >= blockE[2])
        }
    }

    @Test func deviceIdentificationThroughTheBridge() async throws {
        try await BridgeHarness.run { harness in
            let objects: [(UInt8, String)] = [
                (0, "GoodWe"), (1, "SEC1000"), (2, bridgeVersion), (3, "https://www.goodwe.com"),
                (4, "SEC1000 Smart Energy Controller (sec1000 bridge)"), (5, "SEC1000"),
            ]
            func encoded(_ range: ClosedRange<UInt8>) -> [UInt8] {
                objects.filter { range.contains($0.0) }.flatMap { [$0.0, UInt8($0.1.utf8.count)] + Array($0.1.utf8) }
            }
            func framed(_ pdu: [UInt8], unit: UInt8 = 1) -> [UInt8] {
                [0x12, 0x34, 0, 0, UInt8((pdu.count + 1) >> 8), UInt8((pdu.count + 1) & 0xFF), unit] + pdu
            }
            let basic = await offPool { rawExchange(port: harness.port, mbap([0x2B, 0x0E, 0x01, 0x00])) }
            #expect(basic == framed([0x2B, 0x0E, 0x01, 0x82, 0x00, 0x00, 3] + encoded(0...2)))
            let regular = await offPool { rawExchange(port: harness.port, mbap(unit: 255, [0x2B, 0x0E, 0x02, 0x00])) }
            #expect(regular == framed([0x2B, 0x0E, 0x02, 0x82, 0x00, 0x00, 6] + encoded(0...5), unit: 255))
            let extended = await offPool { rawExchange(port: harness.port, mbap([0x2B, 0x0E, 0x03, 0x03])) }
            #expect(extended == framed([0x2B, 0x0E, 0x03, 0x82, 0x00, 0x00, 3] + encoded(3...5)))
            let one = await offPool { rawExchange(port: harness.port, mbap([0x2B, 0x0E, 0x04, 0x01])) }
            #expect(one == framed([0x2B, 0x0E, 0x04, 0x82, 0x00, 0x00, 1] + encoded(1...1)))
            // The exceptions: bad object id, bad read code, unknown unit, another MEI type.
            let exceptions: [([UInt8], UInt8, UInt8)] = [
                (mbap([0x2B, 0x0E, 0x04, 0x06]), 1, 0x02), (mbap([0x2B, 0x0E, 0x05, 0x00]), 1, 0x03),
                (mbap(unit: 3, [0x2B, 0x0E, 0x01, 0x00]), 3, 0x0A), (mbap([0x2B, 0x0D, 0x01, 0x00]), 1, 0x01),
            ]
            for (request, unit, code) in exceptions {
                #expect(await offPool { rawExchange(port: harness.port, request) } == [0x12, 0x34, 0, 0, 0, 3, unit, 0xAB, code])
            }
            // The connection stays in step after a reply the server framed itself.
            let answers = await offPool { () -> [[UInt8]] in
                guard let stream = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: harness.port), timeout: .seconds(3)) else {
                    return []
                }
                return [rawExchange(on: stream, mbap([0x2B, 0x0E, 0x04, 0x00])), rawExchange(on: stream, mbap([0x03, 0, 18, 0, 2]))]
            }
            #expect(answers.first == framed([0x2B, 0x0E, 0x04, 0x82, 0x00, 0x00, 1] + encoded(0...0)))
            #expect(answers.last == [0x12, 0x34, 0, 0, 0, 7, 1, 0x03, 4, 0xFF, 0xFF, 0xFE, 0xA1])
        }
    }
}
