import Bridge
import OptionValues
import SEC1000Simulator

/// The configuration the bridge would run with, written in the file's own keys (`config check`).
public enum EffectiveConfiguration {
    /// `simulation` is the simulated device's, when `simulate` is on; `secrets` are the secret keys
    /// the file gives, shown as `<redacted>`.
    public static func yaml(
        _ configuration: BridgeConfiguration, simulation: SimulatorConfiguration?, logLevel: String, secrets: [String] = []
    ) -> String {
        var lines: [String] = []
        func add(_ key: String, _ value: String) { lines.append("\(key): \(value)") }
        func seconds(_ duration: Duration) -> String {
            let (whole, attoseconds) = duration.components
            return NumberArgument.format(Double(whole) + Double(attoseconds) / 1e18)
        }
        add("listen", quoted(configuration.listen.description))
        add("interval", seconds(configuration.interval))
        add("stale-after", seconds(configuration.staleAfter))
        add("max-connections", "\(configuration.maxConnections)")
        add("max-connections-per-address", "\(configuration.maxConnectionsPerAddress)")
        add("idle-timeout", seconds(configuration.idleTimeout))
        add("grid-sign", configuration.gridSign.rawValue)
        add("timeout", seconds(configuration.timeouts.connect))
        add("retries", "\(configuration.retry.attempts)")
        add("retry-wait", seconds(configuration.retry.wait))
        add("min-gap", seconds(configuration.minimumGap))
        add("max-backoff", seconds(configuration.maxBackoff))
        add("log-level", logLevel)
        add("enable-control", "\(configuration.control.enabled)")
        add("control-allow", "[" + configuration.control.allow.map { quoted($0.description) }.joined(separator: ", ") + "]")
        if let maximum = configuration.control.limits.maxExportLimit {
            add("max-export-limit", "\(maximum)")
        } else {
            lines.append("# max-export-limit: not set (any limit the device takes)")
        }
        add("write-timeout", seconds(configuration.control.writeTimeout))
        add("settings-every", "\(configuration.control.settingsEvery)")
        add("sync-clock", "\(configuration.control.syncClock)")
        if let mode = configuration.control.meterMode {
            add("meter-mode", mode.optionName)
        } else {
            lines.append("# meter-mode: not set (a limit change must write it until one has)")
        }
        add("max-plant-power", NumberArgument.format(configuration.maxPlantPower))
        if let path = configuration.energy.statePath {
            add("energy-state", quoted(path))
        } else {
            lines.append("# energy-state: not set (the counters are kept in memory only)")
        }
        add("energy-save-interval", seconds(configuration.energy.saveInterval))
        add("simulate", "\(simulation != nil)")
        if let simulation {
            add("capture", "\(simulation.replayCapture)")
            add("peak-power", NumberArgument.format(simulation.model.peakPower))
            add("day-length", NumberArgument.format(simulation.model.dayLength))
            let faults = simulation.faults
            for (key, rate) in [
                ("short-answer-rate", faults.shortAnswer), ("zero-power-rate", faults.zeroPower), ("bad-checksum-rate", faults.badChecksum),
                ("truncate-rate", faults.truncate), ("hang-rate", faults.hang), ("drop-rate", faults.drop),
                ("implausible-rate", faults.implausible), ("slow-rate", faults.slow),
            ] {
                add(key, NumberArgument.format(rate))
            }
            add("delay", seconds(faults.delay))
            if let seed = simulation.seed { add("seed", "\(seed)") }
            add("set-status", simulation.setStatus == 0x15 ? "nak" : "ack")
            add("ignore-sets", "\(simulation.ignoreSets)")
            add("drop-sets", "\(simulation.dropSets)")
        }
        for secret in secrets { add(secret, "<redacted>") }
        // The simulated device is not one of the file's: `simulate: true` puts it on unit 1.
        let devices = simulation == nil ? configuration.devices[...] : configuration.devices.dropFirst()
        if simulation != nil { lines.append("# unit 1: the simulated SEC1000") }
        lines.append(devices.isEmpty ? "devices: []" : "devices:")
        for device in devices {
            lines.append("  - name: \(quoted(device.effectiveName))")
            lines.append("    host: \(quoted(device.address.host))")
            lines.append("    port: \(device.address.port)")
            lines.append("    unit: \(device.unit)")
            lines.append("    serial: \(quoted(device.effectiveSerialNumber))")
            lines.append("    grid-sign: \((device.gridSign ?? configuration.gridSign).rawValue)")
            if let mode = device.meterMode ?? configuration.control.meterMode { lines.append("    meter-mode: \(mode.optionName)") }
            let alignments = configuration.energy.alignments[device.unit] ?? [:]
            for (key, counter) in [("energy-import-wh", EnergyCounter.gridImport), ("energy-export-wh", .gridExport), ("energy-production-wh", .production)] {
                if let wh = alignments[counter] { lines.append("    \(key): \(wh)") }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML double-quoted string.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: result += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
