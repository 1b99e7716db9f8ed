import JSONText
import SEC1000Protocol

extension JSON {
    /// A fixed-point decimal, `value / 10^digits`, written exactly (no binary float printed as
    /// 0.30000000000000004).
    static func decimal(_ value: Int64, digits: Int) -> JSON {
        .number(decimalString(value, fractionDigits: digits))
    }

    /// `value` rounded to `digits` decimals.
    static func number(_ value: Double, digits: Int) -> JSON {
        guard value.isFinite else { return .null }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        guard abs(scaled) < 9e18 else { return .null }
        return .decimal(Int64(scaled), digits: digits)
    }
}
