import Bridge
import ModbusServer

/// The register map of Docs/register-map.md (blocks A to E), each value read through the same
/// bank the Modbus server answers from: the status page shows exactly what a master reads now.
enum RegisterTable {
    struct Entry {
        var address: UInt16
        var name: String
        var type: String
        var unit: String
        var count: Int { type == "uint16" ? 1 : type == "uint64" ? 4 : 2 }
    }

    static let phases = ["L1", "L2", "L3"]
    static let totals = [
        ("grid power (+ import, − export)", "W", "kW"), ("inverters power", "W", "kW"), ("house load", "W", "kW"),
        ("grid import", "W", "kW"), ("grid export", "W", "kW"),
    ]

    static let entries: [Entry] = {
        var entries: [Entry] = []
        func block(base: UInt16, type: String, units: (String, String, String, String)) {
            var address = base
            for (quantity, unit) in [("voltage", units.0), ("current", units.1), ("power", units.2)] {
                for phase in phases {
                    entries.append(Entry(address: address, name: "\(quantity) \(phase)", type: type, unit: unit))
                    address += 2
                }
            }
            for total in totals {
                entries.append(Entry(address: address, name: total.0, type: type, unit: type == "int32" ? total.1 : units.3))
                address += 2
            }
        }
        block(base: 0, type: "int32", units: ("0.1 V", "0.01 A", "W", "W"))
        block(base: 100, type: "float32", units: ("V", "A", "kW", "kW"))
        entries += [
            Entry(address: 200, name: "status flags", type: "uint16", unit: "bits"),
            Entry(address: 201, name: "data age", type: "uint16", unit: "s"),
            Entry(address: 202, name: "good polls", type: "uint32", unit: "count"),
            Entry(address: 204, name: "failed poll attempts", type: "uint32", unit: "count"),
            Entry(address: 206, name: "last error code", type: "uint16", unit: "code"),
            Entry(address: 207, name: "time of the last good sample", type: "uint32", unit: "Unix s"),
            Entry(address: 209, name: "poll interval", type: "uint16", unit: "s"),
            Entry(address: 300, name: "export limit", type: "uint32", unit: "W"),
            Entry(address: 302, name: "total PV capacity", type: "uint32", unit: "W"),
            Entry(address: 304, name: "control mode", type: "uint16", unit: "code"),
            Entry(address: 305, name: "meter mode", type: "uint16", unit: "code"),
            Entry(address: 306, name: "CT ratio", type: "uint32", unit: ""),
            Entry(address: 308, name: "settings age", type: "uint16", unit: "s"),
            Entry(address: 309, name: "last write result", type: "uint16", unit: "code"),
            Entry(address: 310, name: "last clock sync", type: "uint32", unit: "Unix s"),
            Entry(address: 400, name: "grid import energy", type: "uint64", unit: "Wh"),
            Entry(address: 404, name: "grid export energy", type: "uint64", unit: "Wh"),
            Entry(address: 408, name: "production energy", type: "uint64", unit: "Wh"),
        ]
        return entries
    }()

    static let blocks = [RegisterMap.blockA, RegisterMap.blockB, RegisterMap.blockC, RegisterMap.blockD, RegisterMap.blockE]

    /// Every entry with its registers as a read of its whole block answers now.
    static func rows(unit: UInt8, bank: BridgeRegisterBank) -> [StatusReport.RegisterRow] {
        var rows: [StatusReport.RegisterRow] = []
        for block in blocks {
            var registers = [UInt16](repeating: 0, count: block.count)
            // One read per block, as a master reading the block would: one consistent snapshot.
            let exception = registers.withUnsafeMutableBufferPointer {
                bank.read(unit: unit, address: block.lowerBound, into: $0)
            }
            for entry in entries where block.contains(entry.address) {
                let offset = Int(entry.address - block.lowerBound)
                var row = StatusReport.RegisterRow(
                    address: entry.address, name: entry.name, type: entry.type, unit: entry.unit)
                if let exception {
                    row.exception = exception.rawValue
                } else {
                    let words = Array(registers[offset..<(offset + entry.count)])
                    row.registers = words
                    row.value = decode(words, type: entry.type)
                }
                rows.append(row)
            }
        }
        return rows
    }

    /// High word first, as the map says.
    static func decode(_ words: [UInt16], type: String) -> Double {
        let wide = words.reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        switch type {
        case "int32": return Double(Int32(bitPattern: UInt32(truncatingIfNeeded: wide)))
        case "float32": return Double(Float(bitPattern: UInt32(truncatingIfNeeded: wide)))
        default: return Double(wide)
        }
    }
}
