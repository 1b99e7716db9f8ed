import Sockets

/// Strict parsers for the numbers of the command line and of the configuration file (Docs/configuration.md).
///
/// Every number option names its range. A value outside it, or one that is not a plain decimal
/// (`inf`, `nan`, `1e300`, `0x10`), is a usage error that states the range, so a typo in a service
/// file fails the start with exit code 64 instead of trapping later when it becomes a `Duration`.
public enum NumberArgument {
    /// Seconds: a plain decimal (`2`, `2.5`, `.5`) in `range`.
    public static func seconds(_ range: ClosedRange<Double>) -> @Sendable (String) throws -> Double {
        { text in try decimal(text, in: range, unit: "seconds") }
    }

    /// A decimal quantity in `unit` (W, a probability...) in `range`.
    public static func decimal(_ range: ClosedRange<Double>, unit: String) -> @Sendable (String) throws -> Double {
        { text in try decimal(text, in: range, unit: unit) }
    }

    /// A whole number in `range`.
    public static func integer<T: FixedWidthInteger & Sendable>(_ range: ClosedRange<T>) -> @Sendable (String) throws -> T {
        { text in
            guard isPlainInteger(text), let value = T(text), range.contains(value) else {
                throw OutOfRange(expected: "a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        }
    }

    public static func decimal(_ text: String, in range: ClosedRange<Double>, unit: String) throws -> Double {
        guard isPlainDecimal(text), let value = Double(text), value.isFinite, range.contains(value) else {
            throw OutOfRange(expected: "a number of \(unit) from \(format(range.lowerBound)) to \(format(range.upperBound))")
        }
        return value
    }

    /// Digits with at most one decimal point, and at least one digit; a leading minus for negatives.
    public static func isPlainDecimal(_ text: String) -> Bool {
        let body = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        var digits = 0
        var points = 0
        for character in body.utf8 {
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1
            case UInt8(ascii: "."): points += 1
            default: return false
            }
        }
        return digits > 0 && points <= 1
    }

    public static func isPlainInteger(_ text: String) -> Bool {
        let body = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        return !body.isEmpty && body.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// `86400` rather than `86400.0`; decimals only where there are some.
    public static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// A number the command line does not accept; ArgumentParser prints it after the option's name.
public struct OutOfRange: Error, CustomStringConvertible {
    public let expected: String
    public init(expected: String) { self.expected = expected }
    public var description: String { "expected \(expected)" }
}

/// The ranges of the options that more than one subcommand has.
public enum Ranges {
    /// How long to wait for a device (`--timeout`).
    public static let deviceTimeout: ClosedRange<Double> = 0.001...3600
    /// Pauses between attempts (`--retry-wait`).
    public static let retryWait: ClosedRange<Double> = 0...3600
    /// Attempts of one request (`--retries`).
    public static let retries: ClosedRange<Int> = 1...1000
}

/// `--http HOST:PORT`: both parts required, the port a plain whole number from 0 to 65535.
public enum HTTPAddressArgument {
    public static func parse(_ text: String) throws -> SocketAddress {
        let expected = "HOST:PORT with a port from 0 to 65535 (127.0.0.1:8080, [::1]:8080)"
        guard let colon = text.lastIndex(of: ":"), NumberArgument.isPlainInteger(String(text[text.index(after: colon)...])),
              !text[text.index(after: colon)...].hasPrefix("-"),
              let address = try? SocketAddress(parsing: text, defaultPort: nil)
        else { throw OutOfRange(expected: expected) }
        return address
    }
}
