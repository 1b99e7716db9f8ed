import ModbusServer
import SEC1000Client
import SEC1000Protocol

/// Turns a Modbus write into a settings change, per block D of the register map.
///
/// Writable: 300-301 export limit (uint32, W), 302-303 total capacity (uint32, W), 304 control
/// mode, 305 meter mode. A 32-bit value must be written whole (0x03 otherwise); 306-311 are
/// read-only and everything outside block D is not writable (0x02).
enum ControlWrite {
    static let writable: Range<Int> = 300..<306

    static func change(from request: WriteRequest) -> Result<SettingsChange, ModbusException> {
        let data = request.data
        let address: Int
        var values: [UInt16] = []
        switch request.function {
        case 0x06:
            guard data.count == 4 else { return .failure(.illegalDataValue) }
            address = Int(data[0]) << 8 | Int(data[1])
            values = [UInt16(data[2]) << 8 | UInt16(data[3])]
        case 0x10:
            guard data.count >= 5 else { return .failure(.illegalDataValue) }
            address = Int(data[0]) << 8 | Int(data[1])
            let count = Int(data[2]) << 8 | Int(data[3])
            guard (1...123).contains(count), Int(data[4]) == 2 * count, data.count == 5 + 2 * count else {
                return .failure(.illegalDataValue)
            }
            values = stride(from: 5, to: data.count, by: 2).map { UInt16(data[$0]) << 8 | UInt16(data[$0 + 1]) }
        default:
            return .failure(.illegalFunction)
        }
        let end = address + values.count
        guard address >= writable.lowerBound, end <= writable.upperBound else { return .failure(.illegalDataAddress) }
        // Half of a 32-bit value: a start on a low word or an end after a high word.
        guard address != 301, address != 303, end != 301, end != 303 else { return .failure(.illegalDataValue) }
        func value(at register: Int) -> UInt16? {
            register >= address && register < end ? values[register - address] : nil
        }
        func int32(at register: Int) -> Int32? {
            guard let high = value(at: register), let low = value(at: register + 1) else { return nil }
            return Int32(bitPattern: UInt32(high) << 16 | UInt32(low))
        }
        var change = SettingsChange(exportLimit: int32(at: 300), totalCapacity: int32(at: 302))
        if let raw = value(at: 304) {
            guard raw <= 0xFF, let mode = ControlMode(rawValue: UInt8(raw)) else { return .failure(.illegalDataValue) }
            change.controlMode = mode
        }
        if let raw = value(at: 305) {
            guard raw <= 0xFF, let mode = MeterMode(rawValue: UInt8(raw)) else { return .failure(.illegalDataValue) }
            change.meterMode = mode
        }
        return .success(change)
    }

    /// The registers a write names, for the audit log.
    static func registers(of request: WriteRequest) -> String {
        guard request.data.count >= 2 else { return "?" }
        let address = Int(request.data[0]) << 8 | Int(request.data[1])
        let count = request.function == 0x10 && request.data.count >= 4 ? Int(request.data[2]) << 8 | Int(request.data[3]) : 1
        return count == 1 ? "\(address)" : "\(address)-\(address + count - 1)"
    }
}
