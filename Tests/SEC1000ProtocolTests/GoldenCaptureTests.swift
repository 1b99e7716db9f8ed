import Hex
import Testing
@testable import SEC1000Protocol

/// The 56 bytes a real SEC1000 sent (from the protocol notes).
let goldenAnswer = parseHexBytes("""
    04 52 45 56 4F 00 31 01 01 0B
    00 00 09 6A 00 00 09 64 00 00 09 69
    00 00 01 E0 00 00 01 86 00 00 01 FC
    00 00 01 27 FF FF FF 8E FF FF FD EC
    FF FF FE A1 00 00 0D 3A
    0F 42
    """)!

@Suite("The real capture")
struct GoldenCaptureTests {
    @Test func decodesToTheCapturedValues() throws {
        #expect(goldenAnswer.count == 56)
        let response = try ResponseDecoder.decode(goldenAnswer, for: .readMeasurements)
        let expected = Measurements(
            voltages: [2410, 2404, 2409], currents: [480, 390, 508], powers: [295, -114, -532],
            meterPower: -351, invertersPower: 3386)
        #expect(response == .measurements(expected))
    }

    @Test func checksumIsTheSumOfTheBody() {
        #expect(Frame.checksum(goldenAnswer[7..<54]) == 0x0F42)
    }

    @Test func rendersTheOriginalJSON() throws {
        guard case .measurements(let m) = try ResponseDecoder.decode(goldenAnswer, for: .readMeasurements) else {
            Issue.record("not measurements"); return
        }
        #expect(m.json == """
            {"v1": 241.0, "v2": 240.4, "v3": 240.9, "i1": 4.8, "i2": 3.9, "i3": 5.08, \
            "p1": 0.295, "p2": -0.114, "p3": -0.532, "meters_power": -0.351, "inverters_power": 3.386}
            """)
    }

    @Test func encodingTheDecodedValuesGivesTheCaptureBack() throws {
        let response = try ResponseDecoder.decode(goldenAnswer, for: .readMeasurements)
        #expect(ResponseEncoder.encode(response) == goldenAnswer)
    }

    @Test func analysisNamesEveryField() {
        let analysis = AnswerAnalysis(bytes: goldenAnswer, command: .readMeasurements)
        #expect(analysis.receivedChecksum == 0x0F42)
        #expect(analysis.computedChecksum == 0x0F42)
        let inverters = analysis.rows.first { $0.field.hasPrefix("inverters_power") }
        #expect(inverters?.offset == 50)
        #expect(inverters?.raw == 3386)
        #expect(inverters?.scaled == "3.386 kW")
        #expect(analysis.text.contains("verdict: a valid answer"))
    }
}

@Suite("Request frames")
struct RequestEncodingTests {
    @Test(arguments: [
        (Request.readMeasurements, "00 05 01 01 0B 00 0D"),
        (Request.readExportSettings, "00 05 01 01 43 00 45"),
        (Request.setControl(.byValue, on: true), "00 06 01 01 40 01 00 43"),
        (Request.setControl(.dred, on: false), "00 06 01 01 33 02 00 37"),
        (Request.setControl(.rcr, on: true), "00 06 01 01 28 01 00 2B"),
        (Request.setExportLimit(totalCapacity: 10000, exportLimit: 5000, meterMode: .sumOfPhases),
         "00 0E 01 01 42 00 00 27 10 00 00 13 88 02 01 18"),
        (Request.setClock(DeviceTime(year: 2026, month: 11, day: 26, hour: 13, minute: 5, second: 9)),
         "00 0C 01 01 05 1A 0B 00 1A 0D 05 09 00 61"),
    ])
    func encodesTheSpecBytes(request: Request, hex: String) throws {
        #expect(request.bytes == parseHexBytes(hex))
        // And the simulator's decoder reads every request back.
        #expect(try RequestDecoder.decode(request.bytes) == request)
    }

    @Test func theLengthByteCountsWhatFollows() {
        for request in [Request.readMeasurements, .setExportLimit(totalCapacity: 1, exportLimit: 1, meterMode: .eachPhase)] {
            let bytes = request.bytes
            #expect(Int(bytes[1]) == bytes.count - 2)
        }
    }
}
