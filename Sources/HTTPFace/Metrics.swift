import Hex
import Locking
import Bridge
import ModbusServer
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
final class Metrics: Sendable {
    private struct Key: Hashable {
        let name: String
        let labels: [String]

        init(_ name: String, _ labels: [(String, String)]) {
            self.name = name
            self.labels = labels.flatMap { [$0.0, $0.1] }
        }
    }

    private struct Series {
        var gauges: [Key: Gauge] = [:]
        var counters: [Key: (counter: Counter, total: Double)] = [:]
    }

    private let registry = PrometheusCollectorRegistry()
    /// Scrapes render one at a time: the series and their last totals are one piece of state.
    private let series = Locked(Series())

    func render(_ source: FaceSource, extra: [ExtraMetric] = [], now: ContinuousClock.Instant = .now) -> [UInt8] {
        series.withLock { series in
            var setGauges = Set<Key>()
            var setCounters = Set<Key>()
            // Full names here; the descriptor's other parts stay empty.
            func gauge(name: String, labels: [(String, String)] = [], help: String) -> Gauge {
                let key = Key(name, labels)
                setGauges.insert(key)
                if let gauge = series.gauges[key] { return gauge }
                let gauge = registry.makeGauge(
                    descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
                series.gauges[key] = gauge
                return gauge
            }
            /// Brings the counter to `total`, which whole-number counters pass as Int64 to keep their text integral.
            func counter(name: String, labels: [(String, String)] = [], help: String, total: Double, whole: Bool = true) {
                let key = Key(name, labels)
                setCounters.insert(key)
                var delta = total
                if let (counter, last) = series.counters[key] {
                    if total >= last {
                        delta = total - last
                        if delta > 0 { whole ? counter.increment(by: Int64(delta)) : counter.increment(by: delta) }
                        series.counters[key] = (counter, total)
                        return
                    }
                    registry.unregisterCounter(counter)
                }
                let counter = registry.makeCounter(
                    descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
                whole ? counter.increment(by: Int64(delta)) : counter.increment(by: delta)
                series.counters[key] = (counter, total)
            }
            gauge(
                name: "sec1000_build_info", labels: [("version", source.version)],
                help: "Always 1; the label names the bridge's version.").set(Int64(1))

            for state in source.states {
                let snapshot = state.current
                let device = [("unit", "\(state.unit)"), ("device", source.device(state.unit).map { "\($0.address)" } ?? "")]
                let fresh = snapshot.sample.map { state.isFresh($0, at: now) } ?? false
                gauge(name: "sec1000_device_up", labels: device,
                    help: "1 while the device's data are fresh (served over Modbus), else 0.").set(Int64(fresh ? 1 : 0))
                if let sample = snapshot.sample {
                    gauge(name: "sec1000_device_data_age_seconds", labels: device,
                        help: "Seconds since the device's last good poll.").set((now - sample.taken).seconds)
                }
                counter(name: "sec1000_device_polls_total", labels: device,
                    help: "Good polls of the device since the bridge started.", total: Double(snapshot.goodPolls))
                for (code, count) in snapshot.failuresByCode.sorted(by: { $0.key < $1.key }) {
                    counter(name: "sec1000_device_poll_failures_total", labels: device + [("error", Names.errorLabel(code))],
                        help: "Failed poll attempts of the device by cause (register 206's codes).", total: Double(count))
                }
                for (result, count) in snapshot.writesByResult.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                    counter(name: "sec1000_control_writes_total", labels: device + [("result", result.name)],
                        help: "Modbus writes to the export settings by outcome (register 309's codes).", total: Double(count))
                }
                if let settings = snapshot.control.settings {
                    gauge(name: "sec1000_export_limit_watts", labels: device,
                        help: "The export limit as last read from the device.").set(Int64(settings.exportLimit))
                    gauge(name: "sec1000_pv_capacity_watts", labels: device,
                        help: "The total PV capacity as last read from the device.").set(Int64(settings.totalCapacity))
                    gauge(name: "sec1000_control_mode", labels: device,
                        help: "The export control mode: 0 off, 1 DRED, 2 RCR, 3 by value.").set(Int64(settings.modeByte))
                }
                guard let sample = snapshot.sample, fresh else { continue }
                let reading = sample.reading
                for (name, value, help) in [
                    ("sec1000_grid_power_watts", reading.gridPower, "Power at the grid meter: + import, − export."),
                    ("sec1000_inverters_power_watts", reading.invertersPower, "Power the inverters produce."),
                    ("sec1000_load_power_watts", reading.loadPower, "The house's consumption: inverters power + grid power."),
                    ("sec1000_grid_import_power_watts", reading.importPower, "The import part of the grid power (0 while exporting)."),
                    ("sec1000_grid_export_power_watts", reading.exportPower, "The export part of the grid power (0 while importing)."),
                ] {
                    gauge(name: name, labels: device, help: help).set(Int64(value))
                }
                gauge(name: "sec1000_inverters_power_substituted", labels: device,
                    help: "1 when the inverters power is a cached value standing in for the device's false 0.")
                    .set(Int64(reading.substituted ? 1 : 0))
                for (index, phase) in ["L1", "L2", "L3"].enumerated() {
                    let labels = device + [("phase", phase)]
                    gauge(name: "sec1000_phase_voltage_volts", labels: labels, help: "Phase voltage.")
                        .set(Double(reading.voltages[index]) / 10)
                    gauge(name: "sec1000_phase_current_amperes", labels: labels, help: "Phase current.")
                        .set(Double(reading.currents[index]) / 100)
                    gauge(name: "sec1000_phase_power_watts", labels: labels, help: "Phase power: + import.")
                        .set(Int64(reading.phasePowers[index]))
                }
                for (name, wattHours, help) in [
                    ("sec1000_grid_import_energy_joules_total", sample.energy.gridImport, "Energy imported from the grid, counted by the bridge."),
                    ("sec1000_grid_export_energy_joules_total", sample.energy.gridExport, "Energy exported to the grid, counted by the bridge."),
                    ("sec1000_production_energy_joules_total", sample.energy.production, "Energy the inverters produced, counted by the bridge."),
                ] {
                    counter(name: name, labels: device, help: help + " 1 Wh = 3600 J.", total: wattHours * 3600, whole: false)
                }
            }

            let stats = source.server.statistics
            gauge(
                name: "sec1000_modbus_connections_open", help: "Open Modbus TCP connections.").set(Int64(stats.open))
            counter(name: "sec1000_modbus_connections_accepted_total", help: "Modbus TCP connections accepted.", total: Double(stats.accepted))
            counter(name: "sec1000_modbus_connections_refused_total",
                help: "Modbus TCP connections closed at once: limits reached.", total: Double(stats.refused))
            for (function, count) in stats.requestsByFunction.sorted(by: { $0.key < $1.key }) {
                counter(name: "sec1000_modbus_requests_total", labels: [("function", Self.hex(function))],
                    help: "Modbus requests answered, by function code.", total: Double(count))
            }
            for (code, count) in stats.exceptionsByCode.sorted(by: { $0.key < $1.key }) {
                counter(name: "sec1000_modbus_exceptions_total", labels: [("code", Self.hex(code))],
                    help: "Modbus exception answers, by exception code (0x0B: stale data).", total: Double(count))
            }
            for metric in extra {
                switch metric.kind {
                case .gauge: gauge(name: metric.name, labels: metric.labels, help: metric.help).set(metric.value)
                case .counter: counter(name: metric.name, labels: metric.labels, help: metric.help, total: metric.value, whole: false)
                }
            }
            for (key, gauge) in series.gauges where !setGauges.contains(key) {
                registry.unregisterGauge(gauge)
                series.gauges[key] = nil
            }
            for (key, entry) in series.counters where !setCounters.contains(key) {
                registry.unregisterCounter(entry.counter)
                series.counters[key] = nil
            }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return buffer
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
