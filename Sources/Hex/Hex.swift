/// Hexadecimal text, the one way the program writes and reads it: bytes as the protocol notes
/// write them (`04 52 45 56 4F`), integers with a fixed number of digits (`0x03`, `89abcdef`).

extension Sequence where Element == UInt8 {
    /// Bytes as space-separated upper-case hex pairs.
    public var hexDescription: String { map { hexDigits($0, width: 2) }.joined(separator: " ") }
}

/// `value` in hexadecimal, zero-padded to at least `width` digits.
public func hexDigits(_ value: some BinaryInteger, width: Int, uppercase: Bool = true) -> String {
    let digits = String(value, radix: 16, uppercase: uppercase)
    return digits.count < width ? String(repeating: "0", count: width - digits.count) + digits : digits
}

/// Parses hex text such as `04 52 45 56 4F`, `0452`, or `0x04,0x52`; `nil` if it is not hex.
public func parseHexBytes(_ text: String) -> [UInt8]? {
    let cleaned = text.lowercased().split(whereSeparator: { " ,:\n\t\r".contains($0) }).map { token in
        token.hasPrefix("0x") ? String(token.dropFirst(2)) : String(token)
    }.joined()
    guard cleaned.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    var index = cleaned.startIndex
    while index < cleaned.endIndex {
        let next = cleaned.index(index, offsetBy: 2)
        guard let byte = UInt8(cleaned[index..<next], radix: 16) else { return nil }
        bytes.append(byte)
        index = next
    }
    return bytes
}
