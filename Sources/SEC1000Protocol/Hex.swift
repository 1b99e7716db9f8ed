/// Parses hex text such as `04 52 45 56 4F`, `0452`, or `0x04,0x52`; `nil` if it is not hex.
public func parseHexBytes(_ text: String) -> [UInt8]? {
    var cleaned = text.lowercased()
    cleaned = cleaned.split(whereSeparator: { " ,:\n\t\r".contains($0) }).map { token in
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
