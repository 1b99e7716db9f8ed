/// The register-map contract's answer to any complete request, written from the contract page alone
/// (not from the server's code), so that fuzzers can check every answer they get.
///
/// It assumes one device on unit 1 (reached also through 0 and 255) whose data are fresh, serving
/// the real capture: blocks A and B are then fixed, block C is checked by `statusIsPlausible`.
enum ContractOracle {
    /// Blocks A, B, C, D (control), E (energy) and the SunSpec image, as the register map lists them.
    static let blocks: [Range<Int>] = [0..<28, 100..<128, 200..<210, 300..<312, 400..<412, 40000..<40231]
    static let servedUnits: Set<UInt8> = [0, 1, 255]

    /// Block A for the real capture, as registers: int32 high word first.
    static let blockA: [UInt16] = capturedBlockA.flatMap { value -> [UInt16] in
        let bits = UInt32(bitPattern: value)
        return [UInt16(bits >> 16), UInt16(bits & 0xFFFF)]
    }

    /// Block B for the real capture: block A's values as float32 in V, A and kW.
    static let blockB: [UInt16] = zip(capturedBlockA, [10.0, 10, 10, 100, 100, 100] + Array(repeating: 1000.0, count: 8))
        .flatMap { value, scale -> [UInt16] in
            let bits = Float(Double(value) / scale).bitPattern
            return [UInt16(bits >> 16), UInt16(bits & 0xFFFF)]
        }

    enum Answer: Equatable {
        /// Exception `code` (the answer's function is the request's with bit 7 set).
        case exception(UInt8)
        /// Read Device Identification (function 43): its own answer, or an exception of function 43.
        case identification
        /// `count` registers from `address`.
        case registers(address: Int, count: Int)
    }

    /// What the contract says the answer to `frame` (a whole MBAP frame) is.
    static func answer(to frame: [UInt8]) -> Answer {
        let unit = frame[6]
        let function = frame[7]
        guard servedUnits.contains(unit) else { return .exception(0x0A) }
        if function == 0x2B { return .identification }
        guard function == 0x03 || function == 0x04 else { return .exception(0x01) }
        // A read's PDU is exactly function, address and count.
        guard frame.count == 12 else { return .exception(0x03) }
        let address = Int(frame[8]) << 8 | Int(frame[9])
        let count = Int(frame[10]) << 8 | Int(frame[11])
        guard (1...125).contains(count) else { return .exception(0x03) }
        guard blocks.contains(where: { $0.contains(address) && address + count <= $0.upperBound }) else {
            return .exception(0x02)
        }
        return .registers(address: address, count: count)
    }

    /// `nil` when `response` is the contract's answer to `frame`, else what is wrong.
    static func check(_ response: [UInt8], for frame: [UInt8], interval: UInt16) -> String? {
        let unit = frame[6]
        let function = frame[7]
        switch answer(to: frame) {
        case .identification:
            // The answer's contents are DeviceIdentificationTests' business; here, that it is one.
            let fits = response.count >= 9 && Array(response.prefix(4)) == [frame[0], frame[1], 0, 0]
                && Int(response[4]) << 8 | Int(response[5]) == response.count - 6
                && response[6] == unit && (response[7] == 0x2B || response[7] == 0xAB)
            return fits ? nil : "expected a function 43 answer, got \(response)"
        case .exception(let code):
            // libmodbus builds the exception's function as `function + 0x80` in one byte.
            let expected: [UInt8] = [frame[0], frame[1], 0, 0, 0, 3, unit, function &+ 0x80, code]
            return response == expected ? nil : "expected \(expected), got \(response)"
        case .registers(let address, let count):
            let header: [UInt8] = [
                frame[0], frame[1], 0, 0, UInt8((3 + 2 * count) >> 8), UInt8((3 + 2 * count) & 0xFF), unit, function,
                UInt8(2 * count),
            ]
            guard response.count == header.count + 2 * count, Array(response.prefix(header.count)) == header else {
                return "expected \(count) registers from \(address) behind \(header), got \(response)"
            }
            let values = stride(from: header.count, to: response.count, by: 2).map {
                UInt16(response[$0]) << 8 | UInt16(response[$0 + 1])
            }
            let expected: [UInt16]?
            switch address {
            case 0..<28: expected = Array(blockA[address..<(address + count)])
            case 100..<128: expected = Array(blockB[(address - 100)..<(address - 100 + count)])
            default: expected = nil
            }
            if let expected {
                return values == expected ? nil : "read of \(count) from \(address): expected \(expected), got \(values)"
            }
            // Blocks D, E and the SunSpec image have their own tests; block C is judged here.
            guard (200..<210).contains(address) else { return nil }
            return statusIsPlausible(values, from: address, interval: interval)
                ? nil : "implausible block C from \(address): \(values)"
        }
    }

    /// Block C of a device with fresh data: fresh, a sample taken, no substitution, the interval.
    static func statusIsPlausible(_ values: [UInt16], from address: Int, interval: UInt16) -> Bool {
        for (offset, value) in values.enumerated() {
            switch address + offset {
            case 200 where value & 0b1001 != 0b0001: return false  // fresh, not "no sample"
            case 200 where value & 0b0100 != 0: return false        // the capture has no zero to hide
            case 209 where value != interval: return false
            default: continue
            }
        }
        return true
    }
}

/// The server's framing, as the contract and the MBAP header define it: whole frames are answered
/// in order, and a header that is not Modbus TCP (protocol id other than 0, a length below 2 or
/// above 254) closes the connection. One per connection.
struct FramingModel {
    private var pending: [UInt8] = []
    /// Whether the server has closed (or will close) the connection.
    private(set) var closed = false

    /// Takes bytes as the server receives them; returns the frames it answers.
    mutating func feed(_ bytes: [UInt8]) -> [[UInt8]] {
        guard !closed else { return [] }
        pending += bytes
        var frames: [[UInt8]] = []
        var start = 0
        while pending.count - start >= 7 {
            let length = Int(pending[start + 4]) << 8 | Int(pending[start + 5])
            guard pending[start + 2] == 0, pending[start + 3] == 0, (2...254).contains(length) else {
                closed = true
                break
            }
            guard pending.count - start >= 6 + length else { break }
            frames.append(Array(pending[start..<(start + 6 + length)]))
            start += 6 + length
        }
        pending.removeFirst(start)
        return frames
    }

    /// Bytes of an unfinished frame the server holds.
    var pendingCount: Int { pending.count }
}
