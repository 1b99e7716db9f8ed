/// The frame layout shared by every SEC1000 request and response.
///
/// A request is `00 LL 01 01 CC <payload> SS SS`, where `LL` counts the bytes after itself and
/// `SS SS` is the big-endian sum, mod 65536, of every byte from `01 01 CC` to the end of the payload.
/// A response is the same frame behind the 5-byte prefix `04 'R' 'E' 'V' 'O'`.
public enum Frame {
    /// The bytes in front of every response frame.
    public static let responsePrefix: [UInt8] = [0x04, 0x52, 0x45, 0x56, 0x4F]
    /// Offset of the length byte in a response (prefix, then the leading zero).
    public static let responseLengthOffset = 6
    /// Offset of the command echo in a response.
    public static let responseCommandOffset = 9
    /// Offset of the first payload byte in a response.
    public static let responsePayloadOffset = 10
    /// `01 01 CC SS SS`: the fewest bytes a length byte can count.
    public static let minimumLength = 5

    /// The checksum of `bytes`: their sum modulo 65536.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var sum: UInt16 = 0
        for byte in bytes { sum &+= UInt16(byte) }
        return sum
    }

    /// A complete request frame for `command` carrying `payload`.
    public static func request(command: UInt8, payload: [UInt8] = []) -> [UInt8] {
        var body: [UInt8] = [0x01, 0x01, command]
        body += payload
        let sum = checksum(body)
        return [0x00, UInt8(body.count + 2)] + body + [UInt8(sum >> 8), UInt8(sum & 0xFF)]
    }

    /// The whole size of a response whose length byte is `lengthByte`.
    public static func responseSize(lengthByte: UInt8) -> Int {
        responseLengthOffset + 1 + Int(lengthByte)
    }
}

extension Int32 {
    /// The four big-endian bytes of this value.
    var bigEndianBytes: [UInt8] {
        let bits = UInt32(bitPattern: self)
        return [UInt8(bits >> 24), UInt8((bits >> 16) & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8(bits & 0xFF)]
    }

    /// Reads a big-endian int32 at `offset` of `bytes`.
    static func bigEndian(_ bytes: [UInt8], at offset: Int) -> Int32 {
        let bits = UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
        return Int32(bitPattern: bits)
    }
}
