import SEC1000Client
import SEC1000Protocol

/// The bridge's public register map (contract version 1): addresses and encodings.
///
/// Blocks A and B come from one poll and are encoded once when the poll is published; block C is
/// computed at each request because it reports ages. 32-bit values go high word first.
public enum RegisterMap {
    /// Block A, measurements as scaled int32.
    public static let blockA: Range<UInt16> = 0..<28
    /// Block B, the same as float32 in V, A and kW.
    public static let blockB: Range<UInt16> = 100..<128
    /// Block C, bridge status.
    public static let blockC: Range<UInt16> = 200..<210

    /// Block D, export-limit control (300-311).
    public static let blockD: Range<UInt16> = 300..<312

    /// The blocks, for address checks: a read must lie inside one of them.
    public static let blocks = [blockA, blockB, blockC, blockD, blockE, sunSpec]

    /// The 14 int32 values of block A, in address order.
    public static func blockAValues(_ reading: Reading) -> [Int32] {
        reading.voltages + reading.currents + reading.phasePowers + [
            reading.gridPower, reading.invertersPower, reading.loadPower, reading.importPower, reading.exportPower,
        ]
    }

    /// Decimal digits from block A's unit to block B's (V, A, kW) for each of the 14 values.
    static let blockBDigits: [Int] = [1, 1, 1, 2, 2, 2] + Array(repeating: 3, count: 8)

    /// Blocks A and B as registers: 28 for A, then 28 for B.
    public static func measurementRegisters(_ values: [Int32]) -> [UInt16] {
        var registers: [UInt16] = []
        registers.reserveCapacity(56)
        for value in values { appendHighWordFirst(UInt32(bitPattern: value), to: &registers) }
        for (value, digits) in zip(values, blockBDigits) {
            let scale = digits == 1 ? 10.0 : digits == 2 ? 100.0 : 1000.0
            appendHighWordFirst(Float(Double(value) / scale).bitPattern, to: &registers)
        }
        return registers
    }

    static func appendHighWordFirst(_ value: UInt32, to registers: inout [UInt16]) {
        registers.append(UInt16(value >> 16))
        registers.append(UInt16(value & 0xFFFF))
    }

    /// Status flag bits of register 200.
    public struct StatusFlags: OptionSet, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let fresh = StatusFlags(rawValue: 1 << 0)
        public static let lastPollFailed = StatusFlags(rawValue: 1 << 1)
        public static let substituted = StatusFlags(rawValue: 1 << 2)
        public static let noSample = StatusFlags(rawValue: 1 << 3)
    }

    /// Register 206's code for a poll failure.
    public static func errorCode(_ error: SEC1000Error) -> UInt16 {
        switch error {
        case .timeout: 1
        case .refused, .reset, .unresolvable, .network, .cancelled: 2
        case .shortAnswer: 3
        case .checksumMismatch: 4
        case .malformed, .unexpectedCommand: 5
        case .implausible: 6
        }
    }
}
