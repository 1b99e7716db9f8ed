import Hex
import Locking
import Bridge
import ModbusServer
import NIOCore
import Prometheus

/// `/metrics`: the Prometheus text exposition of the bridge's state at each scrape.
///
/// One registry for the face's life: each series is made once and then set at every scrape.
/// (Making a series copies its family's label sets, so a fresh registry per scrape cost O(k²) in
/// the devices: 43 ms at 247 devices; Docs/performance.md.) A series a scrape does not set is
/// unregistered, so a device whose data went stale has no values (the rule of Modbus exception
/// 0x0B) and a device removed by a reload has no series at all. Counters follow the bridge's
/// totals; one that went down (a device replaced on reload starts again) is made anew, which
/// Prometheus reads as a counter reset. Names follow Prometheus's naming guide: prefix
/// `sec1000_`, base units (watts, volts, amperes, seconds, joules), `_total` on counters. Energy is
/// in joules, not Wh, so `rate()` of a counter is watts.
///
/// A scrape touches about 24 series a device (6 000 at 247 devices), so finding a series is kept
/// cheap: a device's series are keyed by unit and a small number, their labels are built only when
/// the series is made, and "set by this scrape" is a generation number in the entry rather than a
/// set of keys (hashing label strings twice a series was most of a scrape's time).
final class Metrics: Sendable {
    /// The series every device has (some with an index: phase, error code or write result).
    private enum DeviceSeries: UInt8 {
        case up, dataAge, polls, pollFailures, writes, exportLimit, pvCapacity, controlMode
        case gridPower, invertersPower, loadPower, importPower, exportPower, substituted
        case phaseVoltage, phaseCurrent, phasePower, importEnergy, exportEnergy, productionEnergy
    }

    private enum Key: Hashable {
        case device(unit: UInt8, series: DeviceSeries, index: UInt16)
        /// The bridge's own series and other faces' (a dozen): by name and label values.
        case bridge(name: String, labels: [String])
    }

    private enum Metric {
        case gauge(Gauge)
        /// With the bridge's total it was last brought to.
        case counter(Counter, total: Double)
    }

    private struct Entry {
        var metric: Metric
        /// The scrape that last set it.
        var generation: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        /// Each unit's `device` label at the last scrape: a unit whose address changed gets new series.
        var addresses: [UInt8: String] = [:]
        var generation: UInt64 = 0
        /// The exposition, rendered into the same storage at each scrape.
        var text: [UInt8] = []
    }

    private let registry = PrometheusCollectorRegistry()
    /// Scrapes render one at a time: the series and their last totals are one piece of state.
    private let state = Locked(State())

    func render(_ source: FaceSource, extra: [ExtraMetric] = [], now: ContinuousClock.Instant = .now) -> ByteBuffer {
        let configurations = source.devicesByUnit
        let states = source.states
        let stats = source.server.statistics
        return state.withLock { state in
            state.generation &+= 1
            let generation = state.generation
            // Full names here; the descriptor's other parts stay empty.
            func gauge(_ key: Key, _ name: String, help: String, labels: () -> [(String, String)]) -> Gauge {
                // One lookup a series: the entry's generation is set in place through its index.
                if let index = state.entries.index(forKey: key), case .gauge(let gauge) = state.entries.values[index].metric {
                    state.entries.values[index].generation = generation
                    return gauge
                }
                let gauge = registry.makeGauge(
                    descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels())
                state.entries[key] = Entry(metric: .gauge(gauge), generation: generation)
                return gauge
            }
            /// Brings the counter to `total`, which whole-number counters pass as Int64 to keep their text integral.
            func counter(
                _ key: Key, _ name: String, help: String, labels: () -> [(String, String)], total: Double, whole: Bool = true
            ) {
                var delta = total
                if let index = state.entries.index(forKey: key), case .counter(let counter, let last) = state.entries.values[index].metric {
                    if total >= last {
                        delta = total - last
                        if delta > 0 { whole ? counter.increment(by: Int64(delta)) : counter.increment(by: delta) }
                        state.entries.values[index] = Entry(metric: .counter(counter, total: total), generation: generation)
                        return
                    }
                    registry.unregisterCounter(counter)
                }
                let counter = registry.makeCounter(
                    descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels())
                whole ? counter.increment(by: Int64(delta)) : counter.increment(by: delta)
                state.entries[key] = Entry(metric: .counter(counter, total: total), generation: generation)
            }
            func bridgeKey(_ name: String, _ labels: [(String, String)]) -> Key { .bridge(name: name, labels: labels.map(\.1)) }

            gauge(bridgeKey("sec1000_build_info", []), "sec1000_build_info",
                help: "Always 1; the label names the bridge's version.", labels: { [("version", source.version)] }).set(Int64(1))

            var addresses: [UInt8: String] = [:]
            addresses.reserveCapacity(states.count)
            for device in states {
                let unit = device.unit
                let address = configurations[unit].map { "\($0.address)" } ?? ""
                addresses[unit] = address
                if let previous = state.addresses[unit], previous != address { forget(unit: unit, in: &state) }
                let labels = [("unit", String(unit)), ("device", address)]
                func deviceGauge(_ series: DeviceSeries, index: UInt16 = 0, _ name: String, help: String,
                    extra: (String, String)? = nil) -> Gauge {
                    gauge(.device(unit: unit, series: series, index: index), name, help: help,
                        labels: { extra.map { labels + [$0] } ?? labels })
                }
                func deviceCounter(_ series: DeviceSeries, index: UInt16 = 0, _ name: String, help: String,
                    extra: (String, String)? = nil, total: Double, whole: Bool = true) {
                    counter(.device(unit: unit, series: series, index: index), name, help: help,
                        labels: { extra.map { labels + [$0] } ?? labels }, total: total, whole: whole)
                }

                let snapshot = device.current
                let fresh = snapshot.sample.map { device.isFresh($0, at: now) } ?? false
                deviceGauge(.up, "sec1000_device_up",
                    help: "1 while the device's data are fresh (served over Modbus), else 0.").set(Int64(fresh ? 1 : 0))
                if let sample = snapshot.sample {
                    deviceGauge(.dataAge, "sec1000_device_data_age_seconds",
                        help: "Seconds since the device's last good poll.").set((now - sample.taken).seconds)
                }
                deviceCounter(.polls, "sec1000_device_polls_total",
                    help: "Good polls of the device since the bridge started.", total: Double(snapshot.goodPolls))
                for (code, count) in snapshot.failuresByCode {
                    deviceCounter(.pollFailures, index: code, "sec1000_device_poll_failures_total",
                        help: "Failed poll attempts of the device by cause (register 206's codes).",
                        extra: ("error", Names.errorLabel(code)), total: Double(count))
                }
                for (result, count) in snapshot.writesByResult {
                    deviceCounter(.writes, index: result.rawValue, "sec1000_control_writes_total",
                        help: "Modbus writes to the export settings by outcome (register 309's codes).",
                        extra: ("result", result.name), total: Double(count))
                }
                if let settings = snapshot.control.settings {
                    deviceGauge(.exportLimit, "sec1000_export_limit_watts",
                        help: "The export limit as last read from the device.").set(Int64(settings.exportLimit))
                    deviceGauge(.pvCapacity, "sec1000_pv_capacity_watts",
                        help: "The total PV capacity as last read from the device.").set(Int64(settings.totalCapacity))
                    deviceGauge(.controlMode, "sec1000_control_mode",
                        help: "The export control mode: 0 off, 1 DRED, 2 RCR, 3 by value.").set(Int64(settings.modeByte))
                }
                guard let sample = snapshot.sample, fresh else { continue }
                let reading = sample.reading
                deviceGauge(.gridPower, "sec1000_grid_power_watts",
                    help: "Power at the grid meter: + import, − export.").set(Int64(reading.gridPower))
                deviceGauge(.invertersPower, "sec1000_inverters_power_watts",
                    help: "Power the inverters produce.").set(Int64(reading.invertersPower))
                deviceGauge(.loadPower, "sec1000_load_power_watts",
                    help: "The house's consumption: inverters power + grid power.").set(Int64(reading.loadPower))
                deviceGauge(.importPower, "sec1000_grid_import_power_watts",
                    help: "The import part of the grid power (0 while exporting).").set(Int64(reading.importPower))
                deviceGauge(.exportPower, "sec1000_grid_export_power_watts",
                    help: "The export part of the grid power (0 while importing).").set(Int64(reading.exportPower))
                deviceGauge(.substituted, "sec1000_inverters_power_substituted",
                    help: "1 when the inverters power is a cached value standing in for the device's false 0.")
                    .set(Int64(reading.substituted ? 1 : 0))
                for (index, phase) in ["L1", "L2", "L3"].enumerated() {
                    let i = UInt16(index)
                    deviceGauge(.phaseVoltage, index: i, "sec1000_phase_voltage_volts", help: "Phase voltage.", extra: ("phase", phase))
                        .set(Double(reading.voltages[index]) / 10)
                    deviceGauge(.phaseCurrent, index: i, "sec1000_phase_current_amperes", help: "Phase current.", extra: ("phase", phase))
                        .set(Double(reading.currents[index]) / 100)
                    deviceGauge(.phasePower, index: i, "sec1000_phase_power_watts", help: "Phase power: + import.", extra: ("phase", phase))
                        .set(Int64(reading.phasePowers[index]))
                }
                deviceCounter(.importEnergy, "sec1000_grid_import_energy_joules_total",
                    help: "Energy imported from the grid, counted by the bridge. 1 Wh = 3600 J.",
                    total: sample.energy.gridImport * 3600, whole: false)
                deviceCounter(.exportEnergy, "sec1000_grid_export_energy_joules_total",
                    help: "Energy exported to the grid, counted by the bridge. 1 Wh = 3600 J.",
                    total: sample.energy.gridExport * 3600, whole: false)
                deviceCounter(.productionEnergy, "sec1000_production_energy_joules_total",
                    help: "Energy the inverters produced, counted by the bridge. 1 Wh = 3600 J.",
                    total: sample.energy.production * 3600, whole: false)
            }
            state.addresses = addresses

            gauge(bridgeKey("sec1000_modbus_connections_open", []), "sec1000_modbus_connections_open",
                help: "Open Modbus TCP connections.", labels: { [] }).set(Int64(stats.open))
            counter(bridgeKey("sec1000_modbus_connections_accepted_total", []), "sec1000_modbus_connections_accepted_total",
                help: "Modbus TCP connections accepted.", labels: { [] }, total: Double(stats.accepted))
            counter(bridgeKey("sec1000_modbus_connections_refused_total", []), "sec1000_modbus_connections_refused_total",
                help: "Modbus TCP connections closed at once: limits reached.", labels: { [] }, total: Double(stats.refused))
            for (function, count) in stats.requestsByFunction {
                let labels = [("function", Self.hex(function))]
                counter(bridgeKey("sec1000_modbus_requests_total", labels), "sec1000_modbus_requests_total",
                    help: "Modbus requests answered, by function code.", labels: { labels }, total: Double(count))
            }
            for (code, count) in stats.exceptionsByCode {
                let labels = [("code", Self.hex(code))]
                counter(bridgeKey("sec1000_modbus_exceptions_total", labels), "sec1000_modbus_exceptions_total",
                    help: "Modbus exception answers, by exception code (0x0B: stale data).", labels: { labels }, total: Double(count))
            }
            for metric in extra {
                let key = bridgeKey(metric.name, metric.labels)
                switch metric.kind {
                case .gauge: gauge(key, metric.name, help: metric.help, labels: { metric.labels }).set(metric.value)
                case .counter:
                    counter(key, metric.name, help: metric.help, labels: { metric.labels }, total: metric.value, whole: false)
                }
            }

            // Series this scrape did not set: a stale device's values, a removed device's series.
            let unset = state.entries.filter { $0.value.generation != generation }
            for (key, entry) in unset {
                unregister(entry.metric)
                state.entries[key] = nil
            }
            state.text.removeAll(keepingCapacity: true)
            registry.emit(into: &state.text)
            return ByteBuffer(bytes: state.text)
        }
    }

    /// Unregisters every series of device `unit` (its address changed: its labels with it).
    private func forget(unit: UInt8, in state: inout State) {
        for (key, entry) in state.entries {
            guard case .device(unit, _, _) = key else { continue }
            unregister(entry.metric)
            state.entries[key] = nil
        }
    }

    private func unregister(_ metric: Metric) {
        switch metric {
        case .gauge(let gauge): registry.unregisterGauge(gauge)
        case .counter(let counter, _): registry.unregisterCounter(counter)
        }
    }

    /// `0x03`, as Modbus documents write function and exception codes.
    static func hex(_ byte: UInt8) -> String { "0x" + hexDigits(byte, width: 2) }
}

/// A series another face adds to /metrics (`HTTPFaceConfiguration.extraMetrics`).
public struct ExtraMetric: Sendable {
    public enum Kind: Sendable { case gauge, counter }
    public var name: String
    public var labels: [(String, String)]
    public var help: String
    public var kind: Kind
    public var value: Double

    public init(name: String, labels: [(String, String)] = [], help: String, kind: Kind, value: Double) {
        self.name = name
        self.labels = labels
        self.help = help
        self.kind = kind
        self.value = value
    }
}
