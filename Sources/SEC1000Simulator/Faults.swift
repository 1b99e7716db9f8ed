import SEC1000Protocol

/// How often the simulated device misbehaves, each a probability from 0 to 1 per request.
///
/// These are the device's known faults plus the failures of any network peer. At most one fault
/// hits a request; they are tried in the order listed.
public struct FaultRates: Sendable, Equatable {
    /// Close the connection at once without answering (the client sees a reset).
    public var drop: Double = 0
    /// Accept the request and never answer, until the client gives up.
    public var hang: Double = 0
    /// Answer a measurements request with a 6-byte status frame (the device's known fault).
    public var shortAnswer: Double = 0
    /// Send a frame whose checksum is wrong.
    public var badChecksum: Double = 0
    /// Send part of the frame, then close.
    public var truncate: Double = 0
    /// Report 0 W inverters power (the device's known false zero); the rest stays true.
    public var zeroPower: Double = 0
    /// Answer a measurements request with a valid frame of impossible values (a broken meter):
    /// L1 at −230 V, meter and inverters power at 2,147,483,647 W.
    public var implausible: Double = 0
    /// Answer only after `delay`.
    public var slow: Double = 0
    /// How long a slow answer takes.
    public var delay: Duration = .seconds(2)

    public init(drop: Double = 0, hang: Double = 0, shortAnswer: Double = 0, badChecksum: Double = 0,
                truncate: Double = 0, zeroPower: Double = 0, slow: Double = 0, delay: Duration = .seconds(2),
                implausible: Double = 0) {
        (self.drop, self.hang, self.shortAnswer, self.badChecksum) = (drop, hang, shortAnswer, badChecksum)
        (self.truncate, self.zeroPower, self.slow, self.delay) = (truncate, zeroPower, slow, delay)
        self.implausible = implausible
    }

    public static let none = FaultRates()
}

/// The fault chosen for one request.
public enum Fault: String, Sendable, Equatable {
    case drop, hang, shortAnswer, badChecksum, truncate, zeroPower, implausible, slow
}

extension Measurements {
    /// What the `implausible` fault sends instead of `self`: the values seen from a broken device.
    public var madeImplausible: Measurements {
        var m = self
        m.voltages[0] = -2300
        m.meterPower = .max
        m.invertersPower = .max
        return m
    }
}

/// A small, seedable generator (SplitMix64), so a test can replay a fault sequence.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
