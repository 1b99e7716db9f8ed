import Bridge
import JSONText
import SEC1000Client
import SEC1000Protocol

/// The topics of one face, built once from the prefixes.
struct Topics: Sendable {
    let prefix: String
    let homeAssistantPrefix: String

    var status: String { "\(prefix)/status" }
    func availability(_ device: String) -> String { "\(prefix)/\(device)/availability" }
    func state(_ device: String) -> String { "\(prefix)/\(device)/state" }
    func settings(_ device: String) -> String { "\(prefix)/\(device)/settings" }
    func set(_ device: String, _ setting: String) -> String { "\(prefix)/\(device)/set/\(setting)" }
    var setFilter: String { "\(prefix)/+/set/+" }
    func controlResult(_ device: String) -> String { "\(prefix)/\(device)/control/result" }
    var homeAssistantStatus: String { "\(homeAssistantPrefix)/status" }

    /// The device and setting of a `<prefix>/<device>/set/<setting>` topic.
    func parseSet(_ topic: String) -> (device: String, setting: String)? {
        guard topic.hasPrefix(prefix + "/") else { return nil }
        let levels = topic.dropFirst(prefix.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count == 3, levels[1] == "set" else { return nil }
        return (String(levels[0]), String(levels[2]))
    }
}

/// The payloads, as Docs/mqtt.md documents them.
enum Payloads {
    /// One good poll: the measured values under the names and units of `sec1000 read` (V, A, kW;
    /// powers import-positive after `--grid-sign`), the derived powers in W, the energy counters
    /// in Wh, the data's age and the poll's time.
    static func state(_ update: DeviceUpdate, snapshot: DeviceSnapshot, now: ContinuousClock.Instant) -> JSON {
        let reading = update.reading
        let raw: [Int32] = reading.voltages + reading.currents + reading.phasePowers + [reading.gridPower, reading.invertersPower]
        var pairs: [(String, JSON)] = zip(MeasurementField.all, raw).map { field, value in
            (field.key, .decimal(Int64(value), digits: field.fractionDigits))
        }
        let age = now - reading.taken
        pairs += [
            ("grid_power_w", .int(Int64(reading.gridPower))),
            ("import_power_w", .int(Int64(reading.importPower))),
            ("export_power_w", .int(Int64(reading.exportPower))),
            ("inverters_power_w", .int(Int64(reading.invertersPower))),
            ("load_power_w", .int(Int64(reading.loadPower))),
            ("phase_powers_w", .array(reading.phasePowers.map { .int(Int64($0)) })),
            ("energy_import_wh", .number(update.energy.gridImport, digits: 3)),
            ("energy_export_wh", .number(update.energy.gridExport, digits: 3)),
            ("energy_production_wh", .number(update.energy.production, digits: 3)),
            ("substituted", .bool(reading.substituted)),
            ("data_age_s", .number(max(0, seconds(age)), digits: 3)),
            ("poll_time", .number(reading.unixTime, digits: 3)),
            ("good_polls", .int(Int64(snapshot.goodPolls))),
            ("failed_polls", .int(Int64(snapshot.failedPolls))),
        ]
        return .object(pairs)
    }

    /// The export settings as last read, the meter mode last written, their age.
    static func settings(_ control: ControlSnapshot, now: ContinuousClock.Instant) -> JSON {
        .object(settingsPairs(control, now: now))
    }

    static func settingsPairs(_ control: ControlSnapshot, now: ContinuousClock.Instant) -> [(String, JSON)] {
        let settings = control.settings
        return [
            ("export_limit_w", settings.map { .int(Int64($0.exportLimit)) } ?? .null),
            ("total_capacity_w", settings.map { .int(Int64($0.totalCapacity)) } ?? .null),
            ("control_mode", settings.map { .string(controlModeName($0.modeByte)) } ?? .null),
            ("control_mode_code", settings.map { .int(Int64($0.modeByte)) } ?? .null),
            ("meter_mode", control.meterMode.map { .string(meterModeName($0)) } ?? .null),
            ("ct_ratio", settings.map { .int(Int64($0.ctRatio)) } ?? .null),
            ("age_s", control.settingsRead.map { .number(max(0, seconds(now - $0)), digits: 1) } ?? .null),
            ("last_write_result", .string(control.lastWriteResult.name)),
        ]
    }

    /// How a command from `<prefix>/<device>/set/<setting>` ended.
    static func controlResult(
        setting: String, payload: String, outcome: ControlOutcome, control: ControlSnapshot, now: ContinuousClock.Instant,
        unixTime: Double
    ) -> JSON {
        .object([
            ("setting", .string(setting)),
            ("payload", .string(payload)),
            ("outcome", .string(outcomeName(outcome))),
            ("message", .string(outcome.description)),
            ("settings", control.settings == nil ? .null : .object(settingsPairs(control, now: now))),
            ("time", .number(unixTime, digits: 3)),
        ])
    }

    static func outcomeName(_ outcome: ControlOutcome) -> String {
        switch outcome {
        case .confirmed: "confirmed"
        case .refused: "refused"
        case .invalid: "invalid"
        case .notConfirmed: "not_confirmed"
        case .unreachable: "unreachable"
        case .timedOut: "timed_out"
        case .busy: "busy"
        case .shutDown: "shut_down"
        }
    }

    static let controlModeNames: [ControlMode: String] = [.off: "off", .dred: "dred", .rcr: "rcr", .byValue: "by_value"]
    static let meterModeNames: [MeterMode: String] = [.eachPhase: "each_phase", .sumOfPhases: "sum_of_phases"]

    static func controlModeName(_ byte: UInt8) -> String {
        ControlMode(rawValue: byte).flatMap { controlModeNames[$0] } ?? "unknown_\(byte)"
    }

    static func meterModeName(_ mode: MeterMode) -> String { meterModeNames[mode] ?? "\(mode.rawValue)" }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
