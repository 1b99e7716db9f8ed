/// Where the energy counters live and what they start from.
public struct EnergyConfiguration: Sendable, Equatable {
    /// The state file; `nil` keeps the counters in memory only (they restart from `alignments`, or 0).
    public var statePath: String?
    /// Utility-meter readings (Wh) to set counters to, by unit id. With a state file each value is
    /// applied once: again only when a different value is given (see `EnergyRecord.starting`).
    public var alignments: [UInt8: [EnergyCounter: UInt64]] = [:]
    /// How often the state file is written while running; it is also written at start and at shutdown.
    public var saveInterval: Duration = .seconds(60)

    public init(statePath: String? = nil, alignments: [UInt8: [EnergyCounter: UInt64]] = [:], saveInterval: Duration = .seconds(60)) {
        self.statePath = statePath
        self.alignments = alignments
        self.saveInterval = saveInterval
    }
}

/// Splits an option value written `[UNIT=]VALUE`; the unit is `nil` when not given.
public func splitUnitPrefix(_ text: String, option: String) throws(ConfigurationError) -> (unit: UInt8?, value: String) {
    guard let equals = text.firstIndex(of: "=") else { return (nil, text) }
    let unitText = text[..<equals]
    guard let unit = UInt8(unitText), (1...247).contains(unit) else {
        throw .invalid("\(option) \(text): the unit id '\(unitText)' must be 1 to 247")
    }
    return (unit, String(text[text.index(after: equals)...]))
}

extension BridgeConfiguration {
    /// Checks the energy options and serial numbers against the configured devices.
    func validateEnergyAndIdentity() throws(ConfigurationError) {
        let units = Set(devices.map(\.unit))
        for unit in energy.alignments.keys where !units.contains(unit) {
            throw .invalid("an --energy-*-wh value is given for unit \(unit), which no device has")
        }
        if let path = energy.statePath, path.isEmpty { throw .invalid("--energy-state needs a path") }
        guard energy.saveInterval > .zero else { throw .invalid("--energy-save-interval must be positive") }
        guard signCheckAfter > .zero else { throw .invalid("the sign check's duration must be positive") }
        for device in devices {
            guard let serial = device.serialNumber else { continue }
            guard (1...32).contains(serial.utf8.count), serial.unicodeScalars.allSatisfy({ (0x20..<0x7F).contains($0.value) }) else {
                throw .invalid("--serial-number '\(serial)' must be 1 to 32 printable ASCII characters")
            }
        }
    }
}
