/// One of the bridge's energy counters.
public enum EnergyCounter: String, Sendable, CaseIterable {
    /// Energy taken from the grid.
    case gridImport = "import"
    /// Energy sent to the grid.
    case gridExport = "export"
    /// Energy the inverters produced.
    case production
}

/// The bridge's energy counters, in Wh. Fractions are kept so that short polls add up exactly.
public struct EnergyCounters: Sendable, Equatable {
    public var gridImport: Double
    public var gridExport: Double
    public var production: Double

    public init(gridImport: Double = 0, gridExport: Double = 0, production: Double = 0) {
        self.gridImport = gridImport
        self.gridExport = gridExport
        self.production = production
    }

    public static let zero = EnergyCounters()

    public subscript(counter: EnergyCounter) -> Double {
        get {
            switch counter {
            case .gridImport: gridImport
            case .gridExport: gridExport
            case .production: production
            }
        }
        set {
            switch counter {
            case .gridImport: gridImport = newValue
            case .gridExport: gridExport = newValue
            case .production: production = newValue
            }
        }
    }

    /// Whole Wh, as served: fractions are dropped so a served value never runs ahead of the energy.
    public func wholeWh(_ counter: EnergyCounter) -> UInt64 {
        let value = self[counter]
        return value.isFinite && value > 0 ? UInt64(min(value, Double(UInt64.max / 2)).rounded(.down)) : 0
    }
}

/// Integrates grid import, grid export and production from successive good polls.
///
/// Between two polls the powers are taken to change linearly (the trapezoid rule). Import and
/// export are the positive and negative parts of that line, split where it crosses zero, so a
/// swing from import to export is not counted twice. Two polls further apart than `maximumGap`
/// add nothing: the bridge does not guess what happened while it could not see.
///
/// A poll whose grid or inverters power is beyond `maximumPower` (the plant maximum) is refused:
/// no plant can make such a step, so it adds nothing and does not start the next step either.
/// Refusing the points refuses every step above `maximumPower` × elapsed time, since a trapezoid's
/// mean never exceeds its larger end.
public struct EnergyIntegrator: Sendable {
    public private(set) var counters: EnergyCounters
    public let maximumGap: Duration
    /// The plant maximum, W: the most any power may be.
    public let maximumPower: Double
    private var last: (instant: ContinuousClock.Instant, grid: Double, production: Double)?

    /// What `add` did with a poll.
    public enum Step: Sendable, Equatable {
        /// The energy since the previous poll was added.
        case counted
        /// Nothing added: the first poll, or one after a gap.
        case started
        /// Nothing added: a power beyond the plant maximum (`power`, W).
        case refused(power: Double)
    }

    public init(counters: EnergyCounters = .zero, maximumGap: Duration, maximumPower: Double = .infinity) {
        self.counters = counters
        self.maximumGap = maximumGap
        self.maximumPower = maximumPower
    }

    /// Takes one good poll, by name.
    @discardableResult
    public mutating func add(_ reading: Reading) -> Step {
        add(gridPower: reading.gridPower, productionPower: reading.invertersPower, at: reading.taken)
    }

    /// Takes one good poll: grid power (W, + = import) and inverters power (W) measured at `instant`.
    @discardableResult
    public mutating func add(gridPower: Int32, productionPower: Int32, at instant: ContinuousClock.Instant) -> Step {
        let grid = Double(gridPower)
        let production = Double(max(productionPower, 0))
        let highest = max(abs(grid), production)
        guard highest <= maximumPower else {
            last = nil
            return .refused(power: highest)
        }
        defer { last = (instant, grid, production) }
        guard let last, instant > last.instant, instant - last.instant <= maximumGap else { return .started }
        let elapsed = instant - last.instant
        let hours = (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18) / 3600
        let (imported, exported) = Self.split(from: last.grid, to: grid)
        counters.gridImport += imported * hours
        counters.gridExport += exported * hours
        counters.production += (last.production + production) / 2 * hours
        return .counted
    }

    /// The mean positive and mean negative parts (as magnitudes) of a line from `a` to `b` over a unit interval.
    static func split(from a: Double, to b: Double) -> (positive: Double, negative: Double) {
        if a >= 0 && b >= 0 { return ((a + b) / 2, 0) }
        if a <= 0 && b <= 0 { return (0, -(a + b) / 2) }
        // The line crosses zero at a / (a - b) of the interval: a triangle on each side.
        let crossing = a / (a - b)
        let first = abs(a) * crossing / 2
        let second = abs(b) * (1 - crossing) / 2
        return a > 0 ? (first, second) : (second, first)
    }
}
