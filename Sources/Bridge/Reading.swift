import SEC1000Protocol

/// One good poll of a device, by name: the grid sign applied, the zero-power filter applied once.
///
/// Every consumer (the register bank's blocks A, B, E and the SunSpec image, the energy
/// integrator, the MQTT and HTTP faces) reads its fields by name; nothing indexes a position.
/// Units are the device's fixed-point ones, exact as integers: 0.1 V, 0.01 A and W.
public struct Reading: Sendable, Equatable {
    /// Phase voltages L1, L2, L3 in 0.1 V.
    public var voltages: [Int32]
    /// Phase currents L1, L2, L3 in 0.01 A.
    public var currents: [Int32]
    /// Phase powers L1, L2, L3 in W, + = import.
    public var phasePowers: [Int32]
    /// Grid power at the meter in W, + = import, − = export.
    public var gridPower: Int32
    /// What the inverters generate, in W, after the zero-power filter.
    public var invertersPower: Int32
    /// Whether `invertersPower` is a cached value standing in for the device's false 0.
    public var substituted: Bool
    /// When the poll ended, on the monotonic clock (for staleness) and as Unix seconds.
    public var taken: ContinuousClock.Instant
    public var unixTime: Double

    /// The house's consumption in W: what the inverters make plus what the grid brings.
    public var loadPower: Int32 { Int32(clamping: Int64(invertersPower) + Int64(gridPower)) }
    /// The import part of the grid power in W (0 while exporting).
    public var importPower: Int32 { max(gridPower, 0) }
    /// The export part of the grid power in W, as a positive number (0 while importing).
    public var exportPower: Int32 { Int32(clamping: max(-Int64(gridPower), 0)) }

    public init(
        voltages: [Int32], currents: [Int32], phasePowers: [Int32], gridPower: Int32, invertersPower: Int32,
        substituted: Bool, taken: ContinuousClock.Instant, unixTime: Double
    ) {
        precondition(voltages.count == 3 && currents.count == 3 && phasePowers.count == 3, "three phases")
        self.voltages = voltages
        self.currents = currents
        self.phasePowers = phasePowers
        self.gridPower = gridPower
        self.invertersPower = invertersPower
        self.substituted = substituted
        self.taken = taken
        self.unixTime = unixTime
    }

    /// The reading of `measurements` as the device sent them, with the meter's sign turned to
    /// import-positive and the inverters power the filter reported.
    public init(
        _ measurements: Measurements, gridSign: GridSign, filteredInvertersPower: Int32, substituted: Bool,
        taken: ContinuousClock.Instant, unixTime: Double
    ) {
        let sign: Int64 = gridSign == .importPositive ? 1 : -1
        self.init(
            voltages: measurements.voltages, currents: measurements.currents,
            phasePowers: measurements.powers.map { Int32(clamping: sign * Int64($0)) },
            gridPower: Int32(clamping: sign * Int64(measurements.meterPower)), invertersPower: filteredInvertersPower,
            substituted: substituted, taken: taken, unixTime: unixTime)
    }
}
