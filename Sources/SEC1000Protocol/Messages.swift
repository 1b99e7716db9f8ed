/// The command codes the SEC1000 is known to answer.
public enum Command: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case readMeasurements = 0x0B
    case readExportSettings = 0x43
    case setExportLimit = 0x42
    case controlByValue = 0x40
    case controlByDRED = 0x33
    case controlByRCR = 0x28
    case setClock = 0x05

    /// The length byte of a complete answer to this command.
    public var responseLength: UInt8 {
        switch self {
        case .readMeasurements: 0x31
        case .readExportSettings: 0x12
        default: 0x06
        }
    }

    public var description: String {
        let name = switch self {
        case .readMeasurements: "read measurements"
        case .readExportSettings: "read export settings"
        case .setExportLimit: "set export limit"
        case .controlByValue: "control by value"
        case .controlByDRED: "control by DRED"
        case .controlByRCR: "control by RCR"
        case .setClock: "set clock"
        }
        return "\(name) (0x\(String(rawValue, radix: 16, uppercase: true)))"
    }
}

/// How the device's export limitation is driven (the mode byte of the 0x43 answer).
public enum ControlMode: UInt8, Sendable, CaseIterable {
    case off = 0
    case dred = 1
    case rcr = 2
    case byValue = 3

    /// The switch command that turns this source on or off; `nil` for `.off`.
    public var switchCommand: Command? {
        switch self {
        case .off: nil
        case .dred: .controlByDRED
        case .rcr: .controlByRCR
        case .byValue: .controlByValue
        }
    }
}

/// How the device sums the phases when it limits export.
public enum MeterMode: UInt8, Sendable, CaseIterable {
    case eachPhase = 1
    case sumOfPhases = 2
}

/// A local date and time as the device's clock takes it.
public struct DeviceTime: Sendable, Equatable, CustomStringConvertible {
    public var description: String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day)) \(two(hour)):\(two(minute)):\(two(second))"
    }

    public var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        (self.year, self.month, self.day) = (year, month, day)
        (self.hour, self.minute, self.second) = (hour, minute, second)
    }
}

/// A request the client can send.
public enum Request: Sendable, Equatable {
    case readMeasurements
    case readExportSettings
    case setExportLimit(totalCapacity: Int32, exportLimit: Int32, meterMode: MeterMode)
    /// Turns one control source on or off (0x40, 0x33, 0x28).
    case setControl(ControlMode, on: Bool)
    case setClock(DeviceTime)

    public var command: Command {
        switch self {
        case .readMeasurements: .readMeasurements
        case .readExportSettings: .readExportSettings
        case .setExportLimit: .setExportLimit
        case .setControl(let mode, _): mode.switchCommand ?? .controlByValue
        case .setClock: .setClock
        }
    }

    /// The frame on the wire.
    public var bytes: [UInt8] {
        switch self {
        case .readMeasurements, .readExportSettings:
            return Frame.request(command: command.rawValue)
        case .setExportLimit(let capacity, let limit, let meterMode):
            return Frame.request(
                command: command.rawValue,
                payload: capacity.bigEndianBytes + limit.bigEndianBytes + [meterMode.rawValue])
        case .setControl(_, let on):
            return Frame.request(command: command.rawValue, payload: [on ? 0x01 : 0x02])
        case .setClock(let time):
            let fields = [time.year % 100, time.month, 0, time.day, time.hour, time.minute, time.second]
            return Frame.request(command: command.rawValue, payload: fields.map { UInt8(truncatingIfNeeded: $0) })
        }
    }
}

/// The eleven raw integers of a measurements answer (0x0B), exactly as the device sent them.
public struct Measurements: Sendable, Equatable, Hashable {
    /// Phase voltages in 0.1 V.
    public var voltages: [Int32]
    /// Phase currents in 0.01 A.
    public var currents: [Int32]
    /// Phase powers in W.
    public var powers: [Int32]
    /// Grid meter power in W, with the device's sign.
    public var meterPower: Int32
    /// What the inverters generate, in W.
    public var invertersPower: Int32

    public init(voltages: [Int32], currents: [Int32], powers: [Int32], meterPower: Int32, invertersPower: Int32) {
        precondition(voltages.count == 3 && currents.count == 3 && powers.count == 3, "three phases")
        self.voltages = voltages
        self.currents = currents
        self.powers = powers
        self.meterPower = meterPower
        self.invertersPower = invertersPower
    }

    /// The values in the device's order.
    public var rawValues: [Int32] { voltages + currents + powers + [meterPower, invertersPower] }

    /// Builds measurements from the eleven values in the device's order.
    public init(rawValues v: [Int32]) {
        precondition(v.count == 11, "eleven values")
        self.init(voltages: Array(v[0..<3]), currents: Array(v[3..<6]), powers: Array(v[6..<9]),
                  meterPower: v[9], invertersPower: v[10])
    }

    /// The payload of a measurements answer.
    public var payload: [UInt8] { rawValues.flatMap(\.bigEndianBytes) }
}

/// The export-limit settings (the 0x43 answer).
public struct ExportSettings: Sendable, Equatable {
    /// The raw mode byte; `ControlMode(rawValue:)` names the known ones.
    public var modeByte: UInt8
    /// Total PV capacity, W.
    public var totalCapacity: Int32
    /// The CT ratio as the device reports it.
    public var ctRatio: Int32
    /// Export limit, W.
    public var exportLimit: Int32

    public init(mode: ControlMode, totalCapacity: Int32, ctRatio: Int32, exportLimit: Int32) {
        self.init(modeByte: mode.rawValue, totalCapacity: totalCapacity, ctRatio: ctRatio, exportLimit: exportLimit)
    }

    public init(modeByte: UInt8, totalCapacity: Int32, ctRatio: Int32, exportLimit: Int32) {
        self.modeByte = modeByte
        self.totalCapacity = totalCapacity
        self.ctRatio = ctRatio
        self.exportLimit = exportLimit
    }

    public var mode: ControlMode? { ControlMode(rawValue: modeByte) }

    /// The payload of a 0x43 answer.
    public var payload: [UInt8] {
        [modeByte] + totalCapacity.bigEndianBytes + ctRatio.bigEndianBytes + exportLimit.bigEndianBytes
    }
}

/// A decoded answer.
public enum Response: Sendable, Equatable {
    case measurements(Measurements)
    case exportSettings(ExportSettings)
    /// A 6-byte status answer to a set command; see the protocol notes for the observed bytes.
    case status(command: Command, status: UInt8)
}
