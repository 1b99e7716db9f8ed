import Hex
import SEC1000Protocol

/// libFuzzer's entry point: the input is taken as a device answer to every command, and as a request.
///
/// Nothing may trap, and:
/// - a decoded answer re-encodes to exactly the input, and the re-encoding decodes to the same answer;
/// - `ResponseFrameReader` gives the same verdict however the bytes are split, never asks for a byte
///   past the frame, and holds exactly the input when decoding succeeds;
/// - `AnswerAnalysis` reaches the decoder's verdict, and its rows lie inside the input;
/// - a decoded request re-encodes to the input (up to the clock's reserved byte, see below) and
///   decodes again to the same request;
/// - hex text parses back to the bytes it was printed from.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // The texts (error descriptions, the analysis table, JSON) cost most of the time: build them
    // for the command the answer echoes only.
    let echoed = bytes.count > Frame.responseCommandOffset ? Command(rawValue: bytes[Frame.responseCommandOffset]) : nil
    var decodedAsSomething = false
    for command in Command.allCases {
        decodedAsSomething = checkAnswer(bytes, for: command, texts: command == (echoed ?? .readMeasurements))
            || decodedAsSomething
    }
    checkReader(bytes, valid: decodedAsSomething)
    checkRequest(bytes)
    checkHex(bytes)
    return 0
}

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(message())") }
}

func decode(_ bytes: [UInt8], for command: Command) -> Result<Response, ProtocolError> {
    Result { () throws(ProtocolError) -> Response in try ResponseDecoder.decode(bytes, for: command) }
}

/// Checks the decoder and the analysis for `command`; whether the bytes are a valid answer to it.
func checkAnswer(_ bytes: [UInt8], for command: Command, texts: Bool) -> Bool {
    let verdict = decode(bytes, for: command)
    switch verdict {
    case .success(let response):
        let encoded = ResponseEncoder.encode(response)
        require(encoded == bytes, "\(response) re-encodes to \(encoded.hexDescription), not \(bytes.hexDescription)")
        require(decode(encoded, for: command) == verdict, "the re-encoding of \(response) decodes differently")
        if case .measurements(let m) = response {
            require(m.rawValues.count == 11 && Measurements(rawValues: m.rawValues) == m, "measurements round trip")
            if texts {
                _ = m.json
                _ = m.text
            }
        }
    case .failure(let error):
        if texts { _ = error.description }
        require(!error.received.isEmpty || bytes.isEmpty, "an error keeps the bytes received")
    }

    let analysis = AnswerAnalysis(bytes: bytes, command: command)
    require(analysis.result == verdict, "the analysis and the decoder disagree on \(bytes.hexDescription)")
    for row in analysis.rows {
        require(row.offset >= 0 && row.offset + row.bytes.count <= bytes.count, "a row outside the input")
        require(Array(bytes[row.offset..<(row.offset + row.bytes.count)]) == row.bytes, "a row's bytes")
    }
    if texts { _ = analysis.text }
    if case .success = verdict { return true }
    return false
}

/// The frame reader (the same for every command), fed in chunks whose sizes come from the input
/// itself, and one byte at a time. `valid`: the bytes decode as an answer to some command.
func checkReader(_ bytes: [UInt8], valid: Bool) {
    for chunking in [0, 1] {
        var reader = ResponseFrameReader()
        var offset = 0
        var failed: ProtocolError?
        while reader.missing > 0 && offset < bytes.count {
            let wanted = chunking == 1 ? 1 : 1 + Int(bytes[offset]) % reader.missing
            let chunk = bytes[offset..<min(bytes.count, offset + min(wanted, reader.missing))]
            do throws(ProtocolError) {
                try reader.append(chunk)
            } catch {
                failed = error
                break
            }
            offset += chunk.count
        }
        require(reader.bytes.count <= bytes.count, "the reader holds more than it was given")
        if valid {
            require(failed == nil && reader.missing == 0 && reader.bytes == bytes, "the reader rejects a valid answer")
        }
        if failed == nil && reader.missing == 0 {
            require(reader.bytes.count == Frame.responseSize(lengthByte: reader.bytes[Frame.responseLengthOffset]),
                    "a complete frame has the size its length byte says")
        }
    }
}

func checkRequest(_ bytes: [UInt8]) {
    let verdict = Result { () throws(ProtocolError) -> Request in try RequestDecoder.decode(bytes) }
    guard case .success(let request) = verdict else { return }
    let encoded = request.bytes
    require((try? RequestDecoder.decode(encoded)) == request, "\(request) does not survive its own encoding")
    // The decoder does not check the clock command's reserved third byte (always 0 on the wire),
    // so a request that has another value there re-encodes with 0: compare with it set to 0.
    var normalized = bytes
    if case .setClock = request, normalized[7] != 0 {
        normalized[7] = 0
        let sum = Frame.checksum(normalized[2..<(normalized.count - 2)])
        normalized[normalized.count - 2] = UInt8(sum >> 8)
        normalized[normalized.count - 1] = UInt8(sum & 0xFF)
    }
    require(encoded == normalized, "\(request) re-encodes to \(encoded.hexDescription), not \(bytes.hexDescription)")
}

func checkHex(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    if let parsed = parseHexBytes(text) {
        require(parseHexBytes(parsed.hexDescription) == parsed, "hex round trip of \(parsed)")
    }
    require(parseHexBytes(bytes.hexDescription) == bytes, "hex round trip of the input")
}
