import SunSpec
import Testing

let common = CommonInfo(
    manufacturer: "GoodWe", model: "SEC1000", options: "sec1000 bridge", version: "0.1.0", serialNumber: "SN-42",
    deviceAddress: 7)
/// The real capture: currents 4.80/3.90/5.08 A, voltages 241.0/240.4/240.9 V, powers 295/-114/-532 W, grid -351 W.
let capturedMeter = MeterValues(
    currents: [480, 390, 508], voltages: [2410, 2404, 2409], powers: [295, -114, -532], totalPower: -351,
    importedEnergy: 123_456, exportedEnergy: 7_890)

/// Reads a point of a model image at the offset the SunSpec definition gives.
func point(_ registers: [UInt16], _ definition: Definition, _ name: String) throws -> [UInt16] {
    let point = try #require(definition.points.first { $0.name == name })
    return Array(registers[point.offset..<(point.offset + point.size)])
}

func int16(_ registers: [UInt16]) -> Int16 { Int16(bitPattern: registers[0]) }

func string(_ registers: [UInt16]) -> String {
    let bytes = registers.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
}

@Suite("The SunSpec image")
struct ImageTests {
    @Test func theImageIsMarkerModelsAndEnd() throws {
        let image = SunSpecImage.image(
            static: SunSpecImage.staticImage(common),
            inverter: InverterValues(power: 3386, lifetimeEnergy: 1000, state: .mppt), meter: capturedMeter)
        #expect(image.count == 231)
        #expect(Array(image[0..<2]) == [0x5375, 0x6E53])
        // 40002: model 1, length 66; 40070: 103, 50; 40122: 203, 105; 40229: end, 0.
        #expect(Array(image[2..<4]) == [1, 66])
        #expect(Array(image[70..<72]) == [103, 50])
        #expect(Array(image[122..<124]) == [203, 105])
        #expect(Array(image[229..<231]) == [0xFFFF, 0])
        #expect(SunSpecImage.staticRanges == [0..<70, 229..<231])
        #expect(SunSpecImage.liveRange == 70..<229)
        // Walking the chain as a scanner does lands on the end model.
        var offset = 2
        var ids: [UInt16] = []
        while image[offset] != 0xFFFF {
            ids.append(image[offset])
            offset += Int(image[offset + 1]) + 2
        }
        #expect(ids == [1, 103, 203])
        #expect(offset == 229)
    }

    @Test func theCommonModelNamesTheDeviceAndTheBridge() throws {
        let model = SunSpecImage.commonModel(common)
        let definition = try Definition(model: 1)
        #expect(string(try point(model, definition, "Mn")) == "GoodWe")
        #expect(string(try point(model, definition, "Md")) == "SEC1000")
        #expect(string(try point(model, definition, "Opt")) == "sec1000 bridge")
        #expect(string(try point(model, definition, "Vr")) == "0.1.0")
        #expect(string(try point(model, definition, "SN")) == "SN-42")
        #expect(try point(model, definition, "DA") == [7])
        // "GoodWe" is 0x476F 0x6F64 0x5765, then zero bytes to the end of the 16 registers.
        #expect(try point(model, definition, "Mn") == [0x476F, 0x6F64, 0x5765] + Array(repeating: 0, count: 13))
    }

    @Test func theInverterModelHasPowerEnergyAndStateAndNothingElse() throws {
        let model = SunSpecImage.inverterModel(InverterValues(power: 3386, lifetimeEnergy: 5_000_000, state: .mppt))
        let definition = try Definition(model: 103)
        #expect(try point(model, definition, "W") == [3386])
        #expect(try point(model, definition, "W_SF") == [0])
        #expect(try point(model, definition, "WH") == [0x004C, 0x4B40])
        #expect(try point(model, definition, "WH_SF") == [0])
        #expect(try point(model, definition, "St") == [4])
        let set: Set = ["ID", "L", "W", "W_SF", "WH", "WH_SF", "St"]
        for entry in definition.points where !set.contains(entry.name) {
            #expect(try point(model, definition, entry.name) == notImplementedByType[entry.type], "\(entry.name)")
        }
    }

    @Test func theMeterModelHasCurrentsVoltagesPowersAndEnergies() throws {
        let model = SunSpecImage.meterModel(capturedMeter)
        let definition = try Definition(model: 203)
        func value(_ name: String) throws -> Int16 { int16(try point(model, definition, name)) }
        #expect(try ["A", "AphA", "AphB", "AphC"].map(value) == [1378, 480, 390, 508])
        #expect(try value("A_SF") == -2)
        // PhV is the mean of the three: 240.77 V, rounded to 240.8.
        #expect(try ["PhV", "PhVphA", "PhVphB", "PhVphC"].map(value) == [2408, 2410, 2404, 2409])
        #expect(try value("V_SF") == -1)
        #expect(try ["W", "WphA", "WphB", "WphC"].map(value) == [-351, 295, -114, -532])
        #expect(try value("W_SF") == 0)
        #expect(try point(model, definition, "TotWhImp") == [0x0001, 0xE240])
        #expect(try point(model, definition, "TotWhExp") == [0, 7890])
        #expect(try value("TotWh_SF") == 0)
        let set: Set = [
            "ID", "L", "A", "AphA", "AphB", "AphC", "A_SF", "PhV", "PhVphA", "PhVphB", "PhVphC", "V_SF",
            "W", "WphA", "WphB", "WphC", "W_SF", "TotWhImp", "TotWhExp", "TotWh_SF",
        ]
        for entry in definition.points where !set.contains(entry.name) {
            #expect(try point(model, definition, entry.name) == notImplementedByType[entry.type], "\(entry.name)")
        }
    }

    /// Tens of kW per phase still fit int16: the scale factor steps up, never the value overflows.
    @Test func largePlantsRaiseTheScaleFactor() throws {
        let big = MeterValues(
            currents: [21_700, 21_700, 21_700], voltages: [2300, 2300, 2300], powers: [50_000, 49_996, -50_004],
            totalPower: 49_992, importedEnergy: 5_000_000_000, exportedEnergy: 10)
        let model = SunSpecImage.meterModel(big)
        let definition = try Definition(model: 203)
        func value(_ name: String) throws -> Int16 { int16(try point(model, definition, name)) }
        // 651 A in total does not fit at 0.01 A: 0.1 A for all four currents.
        #expect(try ["A", "AphA", "A_SF"].map(value) == [6510, 2170, -1])
        // 50 kW does not fit at 1 W: 10 W, rounded half away from zero.
        #expect(try ["W", "WphA", "WphB", "WphC", "W_SF"].map(value) == [4999, 5000, 5000, -5000, 1])
        // 5 GWh does not fit an acc32 in Wh: 10 Wh.
        #expect(try point(model, definition, "TotWhImp") == [0x1DCD, 0x6500])
        #expect(try point(model, definition, "TotWhExp") == [0, 1])
        #expect(try value("TotWh_SF") == 1)
        let inverter = SunSpecImage.inverterModel(InverterValues(power: 120_000, lifetimeEnergy: 0, state: .mppt))
        let inverterDefinition = try Definition(model: 103)
        #expect(try point(inverter, inverterDefinition, "W") == [12000])
        #expect(try point(inverter, inverterDefinition, "W_SF") == [1])
    }

    @Test(arguments: [
        ([Int64(0)], 0, Scaled.int16, [Int64(0)], Int16(0)),
        ([32767, -32767], 0, Scaled.int16, [32767, -32767], 0),
        ([32768], 0, Scaled.int16, [3277], 1),
        ([-32768], 0, Scaled.int16, [-3277], 1),
        ([15], -1, Scaled.int16, [15], -1),
        // 3276.75 A: 32767.5 rounds up past the range at 0.1 A, so 1 A.
        ([327_675], -2, Scaled.int16, [3277], 0),
        ([Int64(UInt32.max) + 5], 0, Scaled.acc32, [429_496_730], 1),
    ] as [([Int64], Int, ClosedRange<Int64>, [Int64], Int16)])
    func scaleFactorsAreTheSmallestThatFit(values: [Int64], exponent: Int, range: ClosedRange<Int64>, expected: [Int64], sf: Int16) {
        let scaled = Scaled(values, exponent: exponent, fitting: range)
        #expect(scaled.values == expected)
        #expect(scaled.scaleFactor == sf)
    }

    @Test func stringsAreCutAtACharacterAndPadded() {
        #expect(encodeString("AB", registers: 2) == [0x4142, 0])
        #expect(encodeString("ABC", registers: 2) == [0x4142, 0x4300])
        #expect(encodeString("ABCDE", registers: 2) == [0x4142, 0x4344])
        // "é" takes two bytes: it does not fit in the last byte, so it is left out whole.
        #expect(encodeString("ABCé", registers: 2) == [0x4142, 0x4300])
        #expect(encodeString("", registers: 1) == [0])
    }
}
