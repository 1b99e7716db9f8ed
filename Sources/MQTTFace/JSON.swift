import SEC1000Protocol

/// A JSON value written in a fixed key order, with numbers written exactly (no binary floats
/// printed as 0.30000000000000004): what subscribers and tests read is stable.
enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// A fixed-point decimal: `value / 10^digits`.
    case decimal(Int64, digits: Int)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    static func == (a: JSON, b: JSON) -> Bool { a.text == b.text }

    /// `value` rounded to `digits` decimals.
    static func number(_ value: Double, digits: Int) -> JSON {
        guard value.isFinite else { return .null }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        guard abs(scaled) < 9e18 else { return .null }
        return .decimal(Int64(scaled), digits: digits)
    }

    var text: String {
        switch self {
        case .null: "null"
        case .bool(let value): value ? "true" : "false"
        case .int(let value): "\(value)"
        case .decimal(let value, let digits): decimalString(value, fractionDigits: digits)
        case .string(let value): JSON.quote(value)
        case .array(let items): "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let pairs): "{" + pairs.map { JSON.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
