import Bridge
import ModbusServer
import SEC1000Client
import SEC1000Protocol
import JSONText
import NIOCore

/// What the face reads: the bridge's device states and Modbus server, nothing it could change.
/// The devices are read at each request: a reload adds and removes them.
public struct FaceSource: Sendable {
    private let currentStates: @Sendable () -> [DeviceState]
    private let currentDevices: @Sendable () -> [DeviceConfiguration]
    public let server: ModbusTCPServer
    public let version: String
    /// Every register of blocks A to E, read as a Modbus master would (for the register table).
    let bank: BridgeRegisterBank

    public var states: [DeviceState] { currentStates() }
    public var devices: [DeviceConfiguration] { currentDevices() }

    public init(states: [DeviceState], devices: [DeviceConfiguration], server: ModbusTCPServer, version: String) {
        currentStates = { states }
        currentDevices = { devices }
        self.server = server
        self.version = version
        bank = BridgeRegisterBank(devices: states)
    }

    public init(runtime: BridgeRuntime) {
        currentStates = { runtime.states }
        currentDevices = { runtime.configuration.devices }
        server = runtime.server
        version = runtime.configuration.version
        bank = BridgeRegisterBank(fleet: runtime.fleet)
    }

    /// The configuration of each device by unit, read once for a whole response (reading it per
    /// device copied the configuration and searched it 247 times a scrape).
    var devicesByUnit: [UInt8: DeviceConfiguration] {
        Dictionary(devices.map { ($0.unit, $0) }, uniquingKeysWith: { first, _ in first })
    }
}

/// `/api/status` and `/health` as JSON: every device's values, age, flags, settings, counters.
///
/// Values of a stale device are left out (no key), as Modbus answers 0x0B for them: an old number
/// never passes for a new one. Every optional below is left out the same way when `nil`.
struct StatusReport {
    var version: String
    var unixTime: Double
    var healthy: Bool
    var modbus: ModbusStatus
    var devices: [DeviceStatus]

    struct ModbusStatus {
        var port: UInt16
        var openConnections: Int
        var acceptedConnections: Int
        var refusedConnections: Int
        var evictedConnections: Int
        var requests: Int
        var exceptions: Int
        /// Keys: function code in decimal.
        var requestsByFunction: [String: Int]
        /// Keys: exception code in decimal.
        var exceptionsByCode: [String: Int]
    }

    struct DeviceStatus {
        var unit: UInt8
        var address: String
        var serialNumber: String
        var intervalSeconds: Double
        var staleAfterSeconds: Double
        var fresh: Bool
        /// Seconds since the last good poll; absent before the first.
        var ageSeconds: Double?
        var flags: Flags
        var goodPolls: UInt32
        var failedPolls: UInt32
        var failuresByCode: [String: UInt32]
        var lastError: Code
        /// Absent while stale.
        var values: Values?
        var energy: Energy?
        var settings: Settings?
        var control: Control
        var registers: [RegisterRow]
    }

    struct Flags {
        var register: UInt16
        var fresh: Bool
        var lastPollFailed: Bool
        var substituted: Bool
        var noSample: Bool
    }

    struct Code {
        var code: UInt16
        var meaning: String
    }

    /// In V, A and W (the device's fixed-point units divided out).
    struct Values {
        var voltages: [Double]
        var currents: [Double]
        var phasePowers: [Int32]
        var gridPower: Int32
        var invertersPower: Int32
        var loadPower: Int32
        var importPower: Int32
        var exportPower: Int32
        var substituted: Bool
        var unixTime: Double
    }

    struct Energy {
        var gridImportWh: Double
        var gridExportWh: Double
        var productionWh: Double
    }

    struct Settings {
        var exportLimitWatts: Int32
        var totalCapacityWatts: Int32
        var mode: Code
        var ctRatio: Int32
        var meterMode: String?
        var ageSeconds: Double?
    }

    struct Control {
        var lastWriteResult: Code
        var writesByResult: [String: UInt32]
        /// Unix time of the last clock set; 0: never.
        var lastClockSync: UInt32
    }

    /// One value of the register map, as a Modbus read of it answers now.
    struct RegisterRow {
        var address: UInt16
        var name: String
        var type: String
        var unit: String
        /// The raw registers; absent when the read is answered with an exception.
        var registers: [UInt16]?
        var value: Double?
        /// The exception code a read answers (11 while stale).
        var exception: UInt8?
    }
}

extension StatusReport {
    init(_ source: FaceSource, now: ContinuousClock.Instant = .now, unixNow: Double) {
        let configurations = source.devicesByUnit
        let devices = source.states.map {
            DeviceStatus(state: $0, configuration: configurations[$0.unit], bank: source.bank, now: now)
        }
        self.init(
            version: source.version, unixTime: unixNow, healthy: devices.allSatisfy(\.fresh),
            modbus: ModbusStatus(source.server), devices: devices)
    }

    /// The document, written one device at a time into the response's buffer: at 247 devices the
    /// whole report written at once built a 1.4 MB document and its tree of values in memory, which
    /// stayed in the allocator's arenas. Keys are sorted, as `json` writes them.
    static func render(_ source: FaceSource, now: ContinuousClock.Instant = .now, unixNow: Double) -> ByteBuffer {
        let configurations = source.devicesByUnit
        var buffer = ByteBuffer()
        buffer.writeString(#"{"devices":["#)
        var healthy = true
        var text = ""
        for (index, state) in source.states.enumerated() {
            let device = DeviceStatus(state: state, configuration: configurations[state.unit], bank: source.bank, now: now)
            healthy = healthy && device.fresh
            text.removeAll(keepingCapacity: true)
            if index > 0 { text += "," }
            device.json.write(to: &text)
            buffer.writeString(text)
        }
        // The members whose keys sort after "devices": the object's text without its opening brace.
        let rest = JSON.sortedObject([
            ("healthy", .bool(healthy)), ("modbus", ModbusStatus(source.server).json), ("unixTime", .double(unixNow)),
            ("version", .string(source.version)),
        ])
        buffer.writeString("],")
        buffer.writeSubstring(rest.text.dropFirst())
        return buffer
    }

    /// The whole document at once (what `render` writes piecewise).
    var json: JSON {
        .sortedObject([
            ("version", .string(version)), ("unixTime", .double(unixTime)), ("healthy", .bool(healthy)),
            ("modbus", modbus.json), ("devices", .array(devices.map(\.json))),
        ])
    }
}

/// Counters keyed by a code, as an object keyed by the code's decimal text.
func jsonCounts<Key: CustomStringConvertible, Count: BinaryInteger>(_ counts: [Key: Count]) -> JSON {
    .sortedObject(counts.map { ("\($0.key)", .integer($0.value)) })
}

extension StatusReport.ModbusStatus {
    var json: JSON {
        .sortedObject([
            ("port", .integer(port)), ("openConnections", .integer(openConnections)),
            ("acceptedConnections", .integer(acceptedConnections)), ("refusedConnections", .integer(refusedConnections)),
            ("evictedConnections", .integer(evictedConnections)), ("requests", .integer(requests)),
            ("exceptions", .integer(exceptions)), ("requestsByFunction", jsonCounts(requestsByFunction)),
            ("exceptionsByCode", jsonCounts(exceptionsByCode)),
        ])
    }
}

extension StatusReport.DeviceStatus {
    var json: JSON {
        .sortedObject([
            ("unit", .integer(unit)), ("address", .string(address)), ("serialNumber", .string(serialNumber)),
            ("intervalSeconds", .double(intervalSeconds)), ("staleAfterSeconds", .double(staleAfterSeconds)),
            ("fresh", .bool(fresh)), ("ageSeconds", ageSeconds.map(JSON.double)), ("flags", flags.json),
            ("goodPolls", .integer(goodPolls)), ("failedPolls", .integer(failedPolls)),
            ("failuresByCode", jsonCounts(failuresByCode)), ("lastError", lastError.json), ("values", values?.json),
            ("energy", energy?.json), ("settings", settings?.json), ("control", control.json),
            ("registers", .array(registers.map(\.json))),
        ])
    }
}

extension StatusReport.Flags {
    var json: JSON {
        .sortedObject([
            ("register", .integer(register)), ("fresh", .bool(fresh)), ("lastPollFailed", .bool(lastPollFailed)),
            ("substituted", .bool(substituted)), ("noSample", .bool(noSample)),
        ])
    }
}

extension StatusReport.Code {
    var json: JSON { .sortedObject([("code", .integer(code)), ("meaning", .string(meaning))]) }
}

extension StatusReport.Values {
    var json: JSON {
        .sortedObject([
            ("voltages", .array(voltages.map(JSON.double))), ("currents", .array(currents.map(JSON.double))),
            ("phasePowers", .array(phasePowers.map(JSON.integer))), ("gridPower", .integer(gridPower)),
            ("invertersPower", .integer(invertersPower)), ("loadPower", .integer(loadPower)),
            ("importPower", .integer(importPower)), ("exportPower", .integer(exportPower)),
            ("substituted", .bool(substituted)), ("unixTime", .double(unixTime)),
        ])
    }
}

extension StatusReport.Energy {
    var json: JSON {
        .sortedObject([
            ("gridImportWh", .double(gridImportWh)), ("gridExportWh", .double(gridExportWh)), ("productionWh", .double(productionWh)),
        ])
    }
}

extension StatusReport.Settings {
    var json: JSON {
        .sortedObject([
            ("exportLimitWatts", .integer(exportLimitWatts)), ("totalCapacityWatts", .integer(totalCapacityWatts)),
            ("mode", mode.json), ("ctRatio", .integer(ctRatio)), ("meterMode", meterMode.map(JSON.string)),
            ("ageSeconds", ageSeconds.map(JSON.double)),
        ])
    }
}

extension StatusReport.Control {
    var json: JSON {
        .sortedObject([
            ("lastWriteResult", lastWriteResult.json), ("writesByResult", jsonCounts(writesByResult)),
            ("lastClockSync", .integer(lastClockSync)),
        ])
    }
}

extension StatusReport.RegisterRow {
    var json: JSON {
        .sortedObject([
            ("address", .integer(address)), ("name", .string(name)), ("type", .string(type)), ("unit", .string(unit)),
            ("registers", registers.map { .array($0.map(JSON.integer)) }), ("value", value.map(JSON.double)),
            ("exception", exception.map(JSON.integer)),
        ])
    }
}

extension StatusReport.ModbusStatus {
    init(_ server: ModbusTCPServer) {
        let stats = server.statistics
        self.init(
            port: server.port, openConnections: stats.open, acceptedConnections: stats.accepted,
            refusedConnections: stats.refused, evictedConnections: stats.evicted, requests: stats.requests,
            exceptions: stats.exceptions,
            requestsByFunction: Dictionary(uniqueKeysWithValues: stats.requestsByFunction.map { ("\($0.key)", $0.value) }),
            exceptionsByCode: Dictionary(uniqueKeysWithValues: stats.exceptionsByCode.map { ("\($0.key)", $0.value) }))
    }
}

extension StatusReport.DeviceStatus {
    init(state: DeviceState, configuration: DeviceConfiguration?, bank: BridgeRegisterBank, now: ContinuousClock.Instant) {
        let snapshot = state.current
        let fresh = snapshot.sample.map { state.isFresh($0, at: now) } ?? false
        let flags = RegisterMap.StatusFlags(rawValue: state.statusRegisters(snapshot, at: now)[0])
        let freshSample = fresh ? snapshot.sample : nil
        let settings = snapshot.control.settings
        self.init(
            unit: state.unit,
            address: configuration.map { "\($0.address)" } ?? "",
            serialNumber: configuration?.effectiveSerialNumber ?? "",
            intervalSeconds: state.interval.seconds, staleAfterSeconds: state.staleAfter.seconds,
            fresh: fresh,
            ageSeconds: snapshot.sample.map { (now - $0.taken).seconds },
            flags: .init(
                register: flags.rawValue, fresh: flags.contains(.fresh), lastPollFailed: flags.contains(.lastPollFailed),
                substituted: flags.contains(.substituted), noSample: flags.contains(.noSample)),
            goodPolls: snapshot.goodPolls, failedPolls: snapshot.failedPolls,
            failuresByCode: Dictionary(uniqueKeysWithValues: snapshot.failuresByCode.map { ("\($0.key)", $0.value) }),
            lastError: .init(code: snapshot.lastError, meaning: Names.error(snapshot.lastError)),
            values: freshSample.map { sample in
                let r = sample.reading
                return .init(
                    voltages: r.voltages.map { Double($0) / 10 }, currents: r.currents.map { Double($0) / 100 },
                    phasePowers: r.phasePowers, gridPower: r.gridPower, invertersPower: r.invertersPower,
                    loadPower: r.loadPower, importPower: r.importPower, exportPower: r.exportPower,
                    substituted: r.substituted, unixTime: r.unixTime)
            },
            energy: freshSample.map {
                .init(gridImportWh: $0.energy.gridImport, gridExportWh: $0.energy.gridExport, productionWh: $0.energy.production)
            },
            settings: settings.map {
                .init(
                    exportLimitWatts: $0.exportLimit, totalCapacityWatts: $0.totalCapacity,
                    mode: .init(code: UInt16($0.modeByte), meaning: Names.mode($0.modeByte)), ctRatio: $0.ctRatio,
                    meterMode: snapshot.control.meterMode.map(Names.meterMode),
                    ageSeconds: snapshot.control.settingsRead.map { (now - $0).seconds })
            },
            control: .init(
                lastWriteResult: .init(
                    code: snapshot.control.lastWriteResult.rawValue, meaning: Names.writeResult(snapshot.control.lastWriteResult)),
                writesByResult: Dictionary(uniqueKeysWithValues: snapshot.writesByResult.map { ("\($0.key.rawValue)", $0.value) }),
                lastClockSync: snapshot.control.lastClockSync),
            registers: RegisterTable.rows(unit: state.unit, bank: bank))
    }
}

extension Duration {
    /// In seconds, as a decimal.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}

/// The names of the register map's codes (Docs/register-map.md).
enum Names {
    static func error(_ code: UInt16) -> String {
        switch code {
        case 0: "no failure since the bridge started"
        case 1: "timeout"
        case 2: "connection refused or reset"
        case 3: "short answer"
        case 4: "checksum mismatch"
        case 5: "malformed answer"
        case 6: "implausible reading"
        default: "unknown"
        }
    }

    /// The metric label of an error code.
    static func errorLabel(_ code: UInt16) -> String {
        switch code {
        case 1: "timeout"
        case 2: "refused"
        case 3: "short_answer"
        case 4: "checksum_mismatch"
        case 5: "malformed"
        case 6: "implausible"
        default: "code_\(code)"
        }
    }

    static func mode(_ byte: UInt8) -> String {
        switch byte {
        case 0: "off"
        case 1: "DRED"
        case 2: "RCR"
        case 3: "by value"
        default: "unknown"
        }
    }

    static func meterMode(_ mode: MeterMode) -> String {
        switch mode {
        case .eachPhase: "each-phase"
        case .sumOfPhases: "sum"
        }
    }

    static func writeResult(_ result: WriteResult) -> String {
        switch result {
        case .none: "none"
        case .confirmed: "confirmed"
        case .refusedByValidation: "refused by validation"
        case .notConfirmed: "device did not confirm"
        case .unreachable: "device unreachable or write timeout"
        }
    }
}
