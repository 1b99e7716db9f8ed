import SEC1000Protocol

/// A commissioning aid for `--grid-sign`: with the inverters at 0 W (night) a site can only
/// import, so a grid power that reads as export then means the sign is probably inverted.
public struct GridSignCheck: Sendable {
    /// Grid power below -threshold W counts as export; smaller readings are meter noise.
    public static let exportThreshold: Int32 = 25

    /// How long the suspicious reading must last before `observe` reports it.
    public let sustainedFor: Duration
    private var since: ContinuousClock.Instant?
    /// Whether it has been reported; it is reported once per run.
    public private(set) var reported = false

    public init(sustainedFor: Duration) { self.sustainedFor = sustainedFor }

    /// Takes one good poll (grid power with the configured sign applied, + = import; inverters power
    /// after the zero-power filter); `true` exactly once, when the export at 0 W has lasted long enough.
    public mutating func observe(gridPower: Int32, invertersPower: Int32, at instant: ContinuousClock.Instant) -> Bool {
        guard invertersPower == 0, gridPower < -Self.exportThreshold else {
            since = nil
            return false
        }
        let start = since ?? instant
        since = start
        guard !reported, instant - start >= sustainedFor else { return false }
        reported = true
        return true
    }

    /// The warning to log when `observe` says so.
    public static func warning(gridSign: GridSign) -> String {
        let other: GridSign = gridSign == .importPositive ? .exportPositive : .importPositive
        return "the inverters have reported 0 W for a sustained time while the grid power reads as export: "
            + "a site without generation can only import, so --grid-sign \(gridSign.rawValue) is probably inverted "
            + "(try --grid-sign \(other.rawValue))"
    }

    /// For one answer read under the default sign (import-positive, as `sec1000 read` prints it):
    /// a note when the inverters are at 0 W and the meter power reads as export.
    public static func note(for measurements: Measurements) -> String? {
        guard measurements.invertersPower == 0, measurements.meterPower < -exportThreshold else { return nil }
        return "note: the inverters report 0 W and the meter power (\(measurements.meterPower) W) reads as export "
            + "under the default --grid-sign import-positive. With no generation a site can only import: if this "
            + "was read at night, the device probably reports + = export, and the bridge needs --grid-sign export-positive."
    }
}
