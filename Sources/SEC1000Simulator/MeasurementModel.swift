#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SEC1000Protocol

/// Plausible, self-consistent measurements of a three-phase site with solar inverters.
///
/// House loads wander slowly per phase; the inverters follow a daylight curve over local time with
/// passing clouds. Phase power is load minus a third of the production, and the meter power is
/// exactly the sum of the three phases, as on a real site. The meter power is + = import here.
public struct MeasurementModel: Sendable {
    /// Installed PV power, W.
    public var peakPower: Double
    /// Seconds in a simulated day (86400: real time; less compresses the daylight curve).
    public var dayLength: Double

    public init(peakPower: Double = 8000, dayLength: Double = 86400) {
        self.peakPower = peakPower
        self.dayLength = dayLength
    }

    /// The measurements at Unix time `time`.
    public func measurements(at time: Double) -> Measurements {
        let day = dayFraction(time)
        // Production: a sine between 06:00 and 20:00, dimmed by slow clouds.
        let sun = max(0, sin((day - 0.25) / (14.0 / 24.0) * .pi))
        let clouds = 0.8 + 0.2 * sin(time / 97) * sin(time / 41)
        let production = (peakPower * sun * clouds).rounded()
        var voltages: [Int32] = []
        var currents: [Int32] = []
        var powers: [Int32] = []
        for phase in 0..<3 {
            let shift = Double(phase) * 2.1
            let load = 350 + 250 * sin(time / 300 + shift) + 120 * sin(time / 37 + shift * 3)
            let power = (load - production / 3).rounded()
            let volts = (2400 + 40 * sin(time / 60 + shift)).rounded()
            // Apparent current: the real part plus some reactive load, in 0.01 A.
            let amps = (abs(power) / (volts / 10) + 1.2 + 0.3 * sin(time / 23 + shift)) * 100
            voltages.append(Int32(volts))
            currents.append(Int32(amps.rounded()))
            powers.append(Int32(power))
        }
        return Measurements(
            voltages: voltages, currents: currents, powers: powers,
            meterPower: powers.reduce(0, &+), invertersPower: Int32(production))
    }

    private func dayFraction(_ time: Double) -> Double {
        if dayLength < 86400 {
            return (time.truncatingRemainder(dividingBy: dayLength)) / dayLength
        }
        var seconds = time_t(time)
        var local = tm()
        localtime_r(&seconds, &local)
        return (Double(local.tm_hour) * 3600 + Double(local.tm_min) * 60 + Double(local.tm_sec)) / 86400
    }
}
