import Testing
@testable import SEC1000Protocol

@Suite("Bad answers")
struct DecodingErrorTests {
    @Test func shortStatusAnswerIsAShortAnswer() throws {
        let short = ResponseEncoder.frame(command: 0x0B, payload: [0x15])
        #expect(throws: ProtocolError.shortAnswer(command: 0x0B, status: 0x15, received: short)) {
            try ResponseDecoder.decode(short, for: .readMeasurements)
        }
    }

    @Test func flippedByteIsAChecksumMismatch() {
        var bad = goldenAnswer
        bad[20] ^= 0x01
        #expect(throws: ProtocolError.checksumMismatch(received: 0x0F42, computed: 0x0F41, frame: bad)) {
            try ResponseDecoder.decode(bad, for: .readMeasurements)
        }
    }

    @Test func wrongEchoIsAnUnexpectedCommand() {
        let settings = ResponseEncoder.encode(.exportSettings(
            ExportSettings(mode: .byValue, totalCapacity: 1, ctRatio: 2, exportLimit: 3)))
        #expect(throws: ProtocolError.unexpectedCommand(expected: 0x0B, received: 0x43, frame: settings)) {
            try ResponseDecoder.decode(settings, for: .readMeasurements)
        }
    }

    @Test(arguments: [0, 1, 5, 6, 7, 30, 55])
    func truncatedAnswerIsMalformed(length: Int) {
        let truncated = Array(goldenAnswer.prefix(length))
        #expect {
            try ResponseDecoder.decode(truncated, for: .readMeasurements)
        } throws: { error in
            guard case .malformed(_, let received) = error as? ProtocolError else { return false }
            return received == truncated
        }
    }

    @Test func garbagePrefixFailsOnTheFirstWrongByte() {
        var reader = ResponseFrameReader()
        #expect(throws: ProtocolError.badPrefix(received: [0x48])) { try reader.append([0x48]) }
    }

    @Test func extraBytesAfterTheFrameAreMalformed() {
        #expect(throws: ProtocolError.self) { try ResponseDecoder.decode(goldenAnswer + [0], for: .readMeasurements) }
    }

    @Test func lengthBelowTheMinimumIsMalformed() {
        var reader = ResponseFrameReader()
        #expect(throws: ProtocolError.self) { try reader.append([0x04, 0x52, 0x45, 0x56, 0x4F, 0x00, 0x02]) }
    }

    /// Like swift-nio's ByteToMessageDecoderVerifier: the frame arrives one byte at a time.
    @Test func readerAsksForExactlyTheFrameOneByteAtATime() throws {
        var reader = ResponseFrameReader()
        var fed = 0
        while reader.missing > 0 {
            try reader.append([goldenAnswer[fed]])
            fed += 1
        }
        #expect(fed == goldenAnswer.count)
        #expect(reader.bytes == goldenAnswer)
    }

    @Test func analysisOfABadAnswerSaysWhatIsWrong() {
        var bad = goldenAnswer
        bad[55] = 0x00
        let analysis = AnswerAnalysis(bytes: bad, command: .readMeasurements)
        #expect(analysis.text.contains("MISMATCH"))
        #expect(analysis.text.contains("checksum mismatch: frame says 0x0F00, bytes sum to 0x0F42"))
    }

    @Test(arguments: [[UInt8](), [0x04], Array(goldenAnswer.prefix(12)), [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]])
    func analysisNeverTraps(bytes: [UInt8]) {
        let analysis = AnswerAnalysis(bytes: bytes, command: .readMeasurements)
        #expect(analysis.text.contains("verdict: bad answer"))
    }

    @Test(arguments: [(481, 2, "4.81"), (2410, 1, "241.0"), (-351, 3, "-0.351"), (-5, 3, "-0.005"), (0, 3, "0.0"), (3386, 3, "3.386")])
    func decimalsAreExact(raw: Int, digits: Int, expected: String) {
        #expect(decimalString(Int64(raw), fractionDigits: digits) == expected)
    }

    @Test func requestDecoderRefusesABadChecksum() {
        var bad = Request.readMeasurements.bytes
        bad[6] = 0x0E
        #expect(throws: ProtocolError.self) { try RequestDecoder.decode(bad) }
    }
}
