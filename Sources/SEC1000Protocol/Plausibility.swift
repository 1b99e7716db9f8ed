/// The bounds a measurements answer must keep to be taken as real. Docs/reliability.md
/// ("Hardening: implausible readings") says why each bound and rule holds.
///
/// A frame can be valid byte for byte and still carry values no meter can measure (a device
/// fault, a firmware bug, a forged frame). Such values must never be served or integrated.
/// The bounds are wide on purpose: they never reject a real reading, only impossible ones.
public struct PlausibilityBounds: Sendable, Equatable {
    /// The highest phase voltage, in 0.1 V. A phase that is absent reads 0 V.
    public var maximumVoltage: Int32
    /// The highest phase current magnitude, in 0.01 A (the largest low-voltage CT is about 10 kA).
    public var maximumCurrent: Int32
    /// The highest magnitude of the meter power and of the inverters power, W.
    public var maximumTotalPower: Int64
    /// Slack of the power rules for measurement timing: a fraction of the reference power.
    public var relativeTolerance: Double
    /// Slack of the power rules for rounding and small loads, W.
    public var absoluteTolerance: Double

    public init(
        maximumVoltage: Int32 = 5000, maximumCurrent: Int32 = 1_000_000, maximumTotalPower: Int64 = 15_000_000,
        relativeTolerance: Double = 0.25, absoluteTolerance: Double = 50
    ) {
        self.maximumVoltage = maximumVoltage
        self.maximumCurrent = maximumCurrent
        self.maximumTotalPower = maximumTotalPower
        self.relativeTolerance = relativeTolerance
        self.absoluteTolerance = absoluteTolerance
    }

    /// 0 to 500 V per phase, |I| up to 10,000 A, meter and inverters power up to 15 MW
    /// (3 × 500 V × 10 kA), power rules within 25 % + 50 W.
    public static let standard = PlausibilityBounds()
}

/// The rules a reading is checked against, in the order they are checked.
public enum PlausibilityRule: String, Sendable, CaseIterable {
    /// 0 ≤ V ≤ maximum, per phase.
    case voltageRange = "voltage-range"
    /// |I| ≤ maximum, per phase.
    case currentRange = "current-range"
    /// |P| ≤ V × |I| (active power never exceeds apparent power), with slack.
    case phasePower = "phase-power"
    /// |meter| ≤ maximum total power.
    case meterRange = "meter-range"
    /// meter ≈ p1 + p2 + p3, with slack.
    case meterSum = "meter-sum"
    /// |inverters| ≤ maximum total power.
    case invertersRange = "inverters-range"
}

/// Why a reading was found implausible: the rule it breaks, and the values that break it.
public struct ImplausibleReading: Error, Sendable, Equatable, CustomStringConvertible {
    public let rule: PlausibilityRule
    /// The offending values and the bound, in engineering units.
    public let detail: String
    public let measurements: Measurements

    public var description: String { "rule \(rule.rawValue): \(detail)" }
}

extension Measurements {
    /// The first rule these values break, or `nil` when they are plausible.
    public func implausibility(within bounds: PlausibilityBounds = .standard) -> ImplausibleReading? {
        func volts(_ raw: Int64) -> String { decimalString(raw, fractionDigits: 1) + " V" }
        func amps(_ raw: Int64) -> String { decimalString(raw, fractionDigits: 2) + " A" }
        func broken(_ rule: PlausibilityRule, _ detail: String) -> ImplausibleReading {
            ImplausibleReading(rule: rule, detail: detail, measurements: self)
        }
        for (phase, v) in voltages.enumerated() where v < 0 || v > bounds.maximumVoltage {
            return broken(.voltageRange, "voltage L\(phase + 1) is \(volts(Int64(v))), outside 0.0 V to \(volts(Int64(bounds.maximumVoltage)))")
        }
        for (phase, i) in currents.enumerated() where i.magnitude > bounds.maximumCurrent.magnitude {
            return broken(.currentRange, "current L\(phase + 1) is \(amps(Int64(i))), beyond ±\(amps(Int64(bounds.maximumCurrent)))")
        }
        func allowance(_ reference: Double) -> Double { reference * bounds.relativeTolerance + bounds.absoluteTolerance }
        for phase in 0..<3 {
            // 0.1 V × 0.01 A = 1 mW.
            let apparent = Double(voltages[phase]) * Double(currents[phase].magnitude) / 1000
            let power = Double(powers[phase])
            let limit = apparent + allowance(apparent)
            if abs(power) > limit {
                return broken(.phasePower, "power L\(phase + 1) is \(powers[phase]) W, beyond V × I = "
                    + "\(volts(Int64(voltages[phase]))) × \(amps(Int64(currents[phase].magnitude))) = \(Int64(apparent.rounded())) VA "
                    + "(\(Int64(limit.rounded())) W with the tolerance)")
            }
        }
        if Int64(meterPower).magnitude > bounds.maximumTotalPower.magnitude {
            return broken(.meterRange, "meter power is \(meterPower) W, beyond ±\(bounds.maximumTotalPower) W")
        }
        let sum = powers.reduce(Int64(0)) { $0 + Int64($1) }
        let magnitudes = powers.reduce(0.0) { $0 + Double($1.magnitude) }
        if Double((Int64(meterPower) - sum).magnitude) > allowance(magnitudes) {
            return broken(.meterSum, "meter power is \(meterPower) W, but p1 + p2 + p3 = \(powers.map(String.init).joined(separator: " + ")) = \(sum) W "
                + "(allowed difference \(Int64(allowance(magnitudes).rounded())) W)")
        }
        if Int64(invertersPower).magnitude > bounds.maximumTotalPower.magnitude {
            return broken(.invertersRange, "inverters power is \(invertersPower) W, beyond ±\(bounds.maximumTotalPower) W")
        }
        return nil
    }
}
