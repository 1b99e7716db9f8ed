/// A JSON value, written in the order its object keys are given and with numbers written as given:
/// what subscribers, browsers and tests read is stable byte for byte.
///
/// The faces write their documents with it rather than with Foundation's JSONEncoder: a document
/// of 247 devices is written straight into the response, with no tree of boxed values in between,
/// and the HTTP face loads no JSON machinery of Foundation's (its resident memory is measured).
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Written as Swift's shortest text that reads back as the same `Double` (`5.0`, `1e-05`: both
    /// JSON numbers); `null` if not finite.
    case double(Double)
    /// A number's JSON text exactly as the caller formatted it (fixed-point decimals, say).
    case number(String)
    case string(String)
    case array([JSON])
    /// Keys in the order given.
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.text == b.text }

    /// Any integer of the standard library (a `UInt64` past `Int64.max` too, written exactly).
    public static func integer(_ value: some BinaryInteger) -> JSON {
        Int64(exactly: value).map(JSON.int) ?? .number("\(value)")
    }

    /// An object whose `nil` members are left out and whose keys are sorted, as a JSONEncoder with
    /// `.sortedKeys` writes a `Codable` struct.
    public static func sortedObject(_ members: [(String, JSON?)]) -> JSON {
        .object(members.compactMap { key, value in value.map { (key, $0) } }.sorted { $0.0 < $1.0 })
    }

    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// Appends the value's text to `out` (a long document is written without copies of its parts).
    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += value.isFinite ? value.description : "null"
        case .number(let text): out += text
        case .string(let value): JSON.quote(value, to: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out += "," }
                JSON.quote(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    /// Appends `text` as a JSON string literal: quotes, backslashes and control characters escaped.
    static func quote(_ text: String, to out: inout String) {
        out += "\""
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
        out += "\""
    }
}
