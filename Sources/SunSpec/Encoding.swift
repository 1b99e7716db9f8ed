/// The registers of one model, starting "not implemented", filled point by point.
public struct ModelRegisters: Sendable {
    public let layout: ModelLayout
    public private(set) var registers: [UInt16]

    public init(_ layout: ModelLayout) {
        self.layout = layout
        self.registers = layout.notImplemented
    }

    /// Sets a point's raw registers. A name or size that is not the layout's is a programming error.
    public mutating func set(_ name: String, registers values: [UInt16]) {
        guard let point = layout.point(name) else { preconditionFailure("model \(layout.id) has no point \(name)") }
        precondition(values.count == point.size, "\(name) takes \(point.size) registers")
        registers.replaceSubrange(point.offset..<(point.offset + point.size), with: values)
    }

    public mutating func set(_ name: String, int16 value: Int16) { set(name, registers: [UInt16(bitPattern: value)]) }
    public mutating func set(_ name: String, uint16 value: UInt16) { set(name, registers: [value]) }
    public mutating func set(_ name: String, uint32 value: UInt32) {
        set(name, registers: [UInt16(value >> 16), UInt16(value & 0xFFFF)])
    }

    /// Sets a string point: UTF-8, cut at a character boundary to fit, padded with zero bytes.
    public mutating func set(_ name: String, string: String) {
        guard let point = layout.point(name) else { preconditionFailure("model \(layout.id) has no point \(name)") }
        set(name, registers: encodeString(string, registers: point.size))
    }
}

/// A string as `registers` registers: UTF-8, two bytes per register, high byte first, zero-padded.
public func encodeString(_ text: String, registers: Int) -> [UInt16] {
    var bytes: [UInt8] = []
    for character in text {
        let utf8 = Array(String(character).utf8)
        guard bytes.count + utf8.count <= registers * 2 else { break }
        bytes += utf8
    }
    bytes += Array(repeating: 0, count: registers * 2 - bytes.count)
    return stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
}

/// Values of one quantity brought under one scale factor so that each fits its point type.
public struct Scaled: Sendable, Equatable {
    /// The values in units of 10^scaleFactor, rounded half away from zero.
    public let values: [Int64]
    public let scaleFactor: Int16

    /// `values` are in units of 10^`exponent` (0.01 A: -2). The scale factor is the smallest one at
    /// or above `exponent` at which every value lies in `range`, so precision is only given up when
    /// a value would not fit; values that fit at no scale factor are clamped.
    public init(_ values: [Int64], exponent: Int, fitting range: ClosedRange<Int64>) {
        var shift = 0
        var divisor: Int64 = 1
        while shift < 18, !values.allSatisfy({ range.contains(roundedQuotient($0, divisor)) }) {
            shift += 1
            divisor *= 10
        }
        self.values = values.map { min(max(roundedQuotient($0, divisor), range.lowerBound), range.upperBound) }
        self.scaleFactor = Int16(exponent + shift)
    }

    /// The range of an int16 point, without 0x8000 (not implemented).
    public static let int16: ClosedRange<Int64> = -32767...32767
    /// The range of an acc32 point.
    public static let acc32: ClosedRange<Int64> = 0...Int64(UInt32.max)
}

private func roundedQuotient(_ value: Int64, _ divisor: Int64) -> Int64 {
    guard divisor > 1 else { return value }
    let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
    if remainder.magnitude * 2 >= divisor.magnitude { return quotient + (value < 0 ? -1 : 1) }
    return quotient
}
