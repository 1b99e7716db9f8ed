import Hex
/// Every way a device answer can be wrong. Each case carries the bytes that were received.
public enum ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The answer does not start with `04 52 45 56 4F` ("REVO").
    case badPrefix(received: [UInt8])
    /// A status frame (length byte 6) came where a data answer was expected: the device's
    /// known "short answer" fault. Retrying is the cure.
    case shortAnswer(command: UInt8, status: UInt8, received: [UInt8])
    /// The checksum in the frame is not the sum of its bytes.
    case checksumMismatch(received: UInt16, computed: UInt16, frame: [UInt8])
    /// The answer echoes another command than the one sent.
    case unexpectedCommand(expected: UInt8, received: UInt8, frame: [UInt8])
    /// The frame breaks the layout in some other way; `reason` says how.
    case malformed(reason: String, received: [UInt8])

    /// The bytes the error is about.
    public var received: [UInt8] {
        switch self {
        case .badPrefix(let bytes), .shortAnswer(_, _, let bytes), .checksumMismatch(_, _, let bytes),
             .unexpectedCommand(_, _, let bytes), .malformed(_, let bytes):
            bytes
        }
    }

    public var description: String {
        switch self {
        case .badPrefix(let bytes):
            "answer does not start with 04 52 45 56 4F (REVO): received \(bytes.hexDescription)"
        case .shortAnswer(let command, let status, let bytes):
            "short answer: status frame (status 0x\(hexDigits(status, width: 2))) instead of the data for command 0x\(hexDigits(command, width: 2)) (received \(bytes.count) bytes: \(bytes.hexDescription))"
        case .checksumMismatch(let received, let computed, _):
            "checksum mismatch: frame says 0x\(hexDigits(received, width: 4)), bytes sum to 0x\(hexDigits(computed, width: 4))"
        case .unexpectedCommand(let expected, let received, _):
            "unexpected command: sent 0x\(hexDigits(expected, width: 2)), answer echoes 0x\(hexDigits(received, width: 2))"
        case .malformed(let reason, let bytes):
            "malformed answer: \(reason) (received \(bytes.count) bytes: \(bytes.hexDescription))"
        }
    }
}


extension String {
    fileprivate func replacingSpaces() -> String { String(filter { $0 != " " }) }
}

/// Says how many more bytes a response needs, so a reader never reads past the frame.
///
/// Feed it what has arrived; `missing` is 0 once the frame is complete. The prefix and the
/// length byte are checked as soon as they arrive, so garbage fails fast instead of waiting
/// for bytes that will never make sense.
public struct ResponseFrameReader: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// How many bytes to read next; 0 when the frame is complete.
    public var missing: Int {
        guard bytes.count > Frame.responseLengthOffset else { return Frame.responseLengthOffset + 1 - bytes.count }
        return Frame.responseSize(lengthByte: bytes[Frame.responseLengthOffset]) - bytes.count
    }

    /// Appends received bytes; at most `missing` of them must be given.
    public mutating func append<C: Collection>(_ chunk: C) throws(ProtocolError) where C.Element == UInt8 {
        precondition(chunk.count <= missing, "read past the frame")
        bytes.append(contentsOf: chunk)
        let prefixCount = min(bytes.count, Frame.responsePrefix.count)
        guard bytes[..<prefixCount].elementsEqual(Frame.responsePrefix[..<prefixCount]) else {
            throw .badPrefix(received: bytes)
        }
        if bytes.count > 5 && bytes[5] != 0 {
            throw .malformed(reason: "byte 5 is 0x\(hexDigits(bytes[5], width: 2)), not 00", received: bytes)
        }
        if bytes.count > Frame.responseLengthOffset && Int(bytes[Frame.responseLengthOffset]) < Frame.minimumLength {
            throw .malformed(reason: "length byte \(bytes[Frame.responseLengthOffset]) is below the minimum 5", received: bytes)
        }
    }
}

/// Decodes complete answers.
public enum ResponseDecoder {
    /// Checks a complete answer to `command` and decodes its payload.
    ///
    /// Checks, in order: prefix, leading zero, that the length byte matches the size, the checksum,
    /// the `01 01` marker, the command echo, and that the length suits the command.
    public static func decode(_ bytes: [UInt8], for command: Command) throws(ProtocolError) -> Response {
        var reader = ResponseFrameReader()
        while reader.missing > 0 && reader.bytes.count < bytes.count {
            let start = reader.bytes.count
            try reader.append(bytes[start..<min(bytes.count, start + reader.missing)])
        }
        if reader.missing > 0 {
            guard reader.bytes.count > Frame.responseLengthOffset else {
                throw .malformed(reason: "answer ends after \(bytes.count) bytes, before its length byte", received: bytes)
            }
            throw .malformed(
                reason: "truncated: length byte says \(Frame.responseSize(lengthByte: bytes[Frame.responseLengthOffset])) bytes, got \(bytes.count)",
                received: bytes)
        }
        guard reader.bytes.count == bytes.count else {
            throw .malformed(reason: "\(bytes.count - reader.bytes.count) bytes after the end of the frame", received: bytes)
        }
        let body = bytes[(Frame.responseLengthOffset + 1)..<(bytes.count - 2)]
        let received = UInt16(bytes[bytes.count - 2]) << 8 | UInt16(bytes[bytes.count - 1])
        let computed = Frame.checksum(body)
        guard received == computed else {
            throw .checksumMismatch(received: received, computed: computed, frame: bytes)
        }
        guard bytes[7] == 0x01, bytes[8] == 0x01 else {
            throw .malformed(reason: "bytes 7-8 are \([bytes[7], bytes[8]].hexDescription), not 01 01", received: bytes)
        }
        let echoed = bytes[Frame.responseCommandOffset]
        guard echoed == command.rawValue else {
            throw .unexpectedCommand(expected: command.rawValue, received: echoed, frame: bytes)
        }
        let length = bytes[Frame.responseLengthOffset]
        guard length == command.responseLength else {
            if length == 0x06 {
                throw .shortAnswer(command: echoed, status: bytes[Frame.responsePayloadOffset], received: bytes)
            }
            throw .malformed(
                reason: "length byte \(length) where \(command.responseLength) is expected for \(command)", received: bytes)
        }
        let payload = Array(bytes[Frame.responsePayloadOffset..<(bytes.count - 2)])
        switch command {
        case .readMeasurements:
            let values = stride(from: 0, to: 44, by: 4).map { Int32.bigEndian(payload, at: $0) }
            return .measurements(Measurements(rawValues: values))
        case .readExportSettings:
            return .exportSettings(ExportSettings(
                modeByte: payload[0],
                totalCapacity: Int32.bigEndian(payload, at: 1),
                ctRatio: Int32.bigEndian(payload, at: 5),
                exportLimit: Int32.bigEndian(payload, at: 9)))
        default:
            return .status(command: command, status: payload[0])
        }
    }
}

/// Encodes answers, for the simulated device.
public enum ResponseEncoder {
    /// A complete answer frame for `command` carrying `payload`.
    public static func frame(command: UInt8, payload: [UInt8]) -> [UInt8] {
        Frame.responsePrefix + Frame.request(command: command, payload: payload)
    }

    public static func encode(_ response: Response) -> [UInt8] {
        switch response {
        case .measurements(let m): frame(command: Command.readMeasurements.rawValue, payload: m.payload)
        case .exportSettings(let s): frame(command: Command.readExportSettings.rawValue, payload: s.payload)
        case .status(let command, let status): frame(command: command.rawValue, payload: [status])
        }
    }
}

/// Decodes request frames, for the simulated device.
public enum RequestDecoder {
    /// How many bytes a request needs in all once its first two bytes are in.
    public static func size(lengthByte: UInt8) -> Int { 2 + Int(lengthByte) }

    /// Checks a complete request frame and returns what it asks for.
    public static func decode(_ bytes: [UInt8]) throws(ProtocolError) -> Request {
        guard bytes.count >= 2 + Frame.minimumLength, bytes[0] == 0, size(lengthByte: bytes[1]) == bytes.count else {
            throw .malformed(reason: "not a request frame", received: bytes)
        }
        let body = bytes[2..<(bytes.count - 2)]
        let received = UInt16(bytes[bytes.count - 2]) << 8 | UInt16(bytes[bytes.count - 1])
        let computed = Frame.checksum(body)
        guard received == computed else { throw .checksumMismatch(received: received, computed: computed, frame: bytes) }
        guard bytes[2] == 1, bytes[3] == 1 else { throw .malformed(reason: "bytes 2-3 are not 01 01", received: bytes) }
        guard let command = Command(rawValue: bytes[4]) else {
            throw .malformed(reason: "unknown command 0x\(hexDigits(bytes[4], width: 2))", received: bytes)
        }
        let payload = Array(bytes[5..<(bytes.count - 2)])
        func expect(_ count: Int) throws(ProtocolError) {
            guard payload.count == count else {
                throw .malformed(reason: "\(command) takes \(count) payload bytes, got \(payload.count)", received: bytes)
            }
        }
        switch command {
        case .readMeasurements:
            try expect(0)
            return .readMeasurements
        case .readExportSettings:
            try expect(0)
            return .readExportSettings
        case .setExportLimit:
            try expect(9)
            guard let meterMode = MeterMode(rawValue: payload[8]) else {
                throw .malformed(reason: "unknown meter mode \(payload[8])", received: bytes)
            }
            return .setExportLimit(
                totalCapacity: Int32.bigEndian(payload, at: 0), exportLimit: Int32.bigEndian(payload, at: 4),
                meterMode: meterMode)
        case .controlByValue, .controlByDRED, .controlByRCR:
            try expect(1)
            guard payload[0] == 1 || payload[0] == 2 else {
                throw .malformed(reason: "switch byte must be 01 or 02, got \(hexDigits(payload[0], width: 2))", received: bytes)
            }
            let mode: ControlMode = command == .controlByValue ? .byValue : command == .controlByDRED ? .dred : .rcr
            return .setControl(mode, on: payload[0] == 1)
        case .setClock:
            try expect(7)
            return .setClock(DeviceTime(
                year: 2000 + Int(payload[0]), month: Int(payload[1]), day: Int(payload[3]),
                hour: Int(payload[4]), minute: Int(payload[5]), second: Int(payload[6])))
        }
    }
}
