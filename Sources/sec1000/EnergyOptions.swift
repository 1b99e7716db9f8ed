import ArgumentParser
import Bridge

/// The bridge's options for its energy counters and SunSpec identity.
struct EnergyOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "File that keeps the energy counters across restarts, written atomically and locked (PATH.lock) while the bridge runs. Without it they are kept in memory only.",
        valueName: "path"))
    var energyState: String?

    @Option(help: ArgumentHelp(
        "Set the grid import counter to a utility-meter reading (Wh), for UNIT or the first device. With --energy-state a value is applied once: again only when a different one is given.",
        valueName: "[unit=]wh"))
    var energyImportWh: [String] = []

    @Option(help: ArgumentHelp("Set the grid export counter (Wh), as --energy-import-wh.", valueName: "[unit=]wh"))
    var energyExportWh: [String] = []

    @Option(help: ArgumentHelp("Set the inverters' production counter (Wh), as --energy-import-wh.", valueName: "[unit=]wh"))
    var energyProductionWh: [String] = []

    @Option(
        help: "Seconds between saves of the energy counters while running (they are also saved at shutdown).",
        transform: NumberArgument.seconds(0.01...86400))
    var energySaveInterval: Double = 60

    @Option(help: ArgumentHelp(
        "SunSpec serial number of UNIT or the first device (default: made from the device's address).",
        valueName: "[unit=]serial"))
    var serialNumber: [String] = []

    /// Adds these options to `configuration`, whose devices are already set.
    func apply(to configuration: inout BridgeConfiguration) throws(ConfigurationError) {
        guard let first = configuration.devices.first?.unit else { return }
        configuration.energy.statePath = energyState
        configuration.energy.saveInterval = .seconds(double: energySaveInterval)
        let readings: [(EnergyCounter, String, [String])] = [
            (.gridImport, "--energy-import-wh", energyImportWh), (.gridExport, "--energy-export-wh", energyExportWh),
            (.production, "--energy-production-wh", energyProductionWh),
        ]
        for (counter, option, values) in readings {
            for text in values {
                let (unit, value) = try splitUnitPrefix(text, option: option)
                guard let wh = UInt64(value) else { throw .invalid("\(option) \(text): '\(value)' is not a whole number of Wh") }
                configuration.energy.alignments[unit ?? first, default: [:]][counter] = wh
            }
        }
        for text in serialNumber {
            let (unit, serial) = try splitUnitPrefix(text, option: "--serial-number")
            guard let index = configuration.devices.firstIndex(where: { $0.unit == unit ?? first }) else {
                throw .invalid("--serial-number \(text): no device has unit \(unit ?? first)")
            }
            configuration.devices[index].serialNumber = serial
        }
    }
}
