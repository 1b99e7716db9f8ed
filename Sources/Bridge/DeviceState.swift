import SEC1000Protocol
import SunSpec
import Locking

/// One good poll, with its energy counters, encoded once for serving.
public struct Sample: Sendable {
    /// The poll by name.
    public let reading: Reading
    /// Blocks A and B: 56 registers.
    public let registers: [UInt16]
    /// The energy counters after this poll, and block E and the SunSpec image encoded from it.
    public let energy: EnergyCounters
    public let energyRegisters: [UInt16]
    public let sunSpecRegisters: [UInt16]

    /// When it was taken, on the monotonic clock (for staleness).
    public var taken: ContinuousClock.Instant { reading.taken }
    /// When it was taken, Unix seconds (for register 207).
    public var unixTime: UInt32 { UInt32(clamping: Int64(reading.unixTime)) }
    /// Whether the inverters power is a substituted value.
    public var substituted: Bool { reading.substituted }
}

/// The device's export settings as last read, and the outcomes of control operations.
public struct ControlSnapshot: Sendable {
    public var settings: ExportSettings?
    /// When `settings` were read, on the monotonic clock.
    public var settingsRead: ContinuousClock.Instant?
    /// The meter mode last confirmed written, or the configured one before any write set it (the
    /// device does not report it).
    public var meterMode: MeterMode?
    /// Whether `meterMode` was confirmed by a write rather than taken from the configuration.
    public var meterModeWritten = false
    /// Register 309.
    public var lastWriteResult: WriteResult = .none
    /// Unix time of the last successful clock set; 0: never.
    public var lastClockSync: UInt32 = 0

    public init() {}
}

/// Register 309: how the last write through Modbus ended.
public enum WriteResult: UInt16, Sendable, CaseIterable {
    case none = 0
    case confirmed = 1
    case refusedByValidation = 2
    case notConfirmed = 3
    case unreachable = 4
}

extension WriteResult {
    /// The name front ends show for it: a metric label, a JSON value.
    public var name: String {
        switch self {
        case .none: "none"
        case .confirmed: "confirmed"
        case .refusedByValidation: "refused_by_validation"
        case .notConfirmed: "not_confirmed"
        case .unreachable: "unreachable"
        }
    }
}

/// What the bridge knows of one device, published whole so no reader sees half of a poll.
public struct DeviceSnapshot: Sendable {
    public var control = ControlSnapshot()
    public var sample: Sample?
    public var goodPolls: UInt32 = 0
    public var failedPolls: UInt32 = 0
    /// Register 206: the cause of the most recent failure (0: none so far).
    public var lastError: UInt16 = 0
    public var lastPollFailed = false
    /// Failed attempts by register 206 code, and writes by register 309 result (for the HTTP face's metrics).
    public var failuresByCode: [UInt16: UInt32] = [:]
    public var writesByResult: [WriteResult: UInt32] = [:]
    /// Counts settings reads and write outcomes, so a front end that keeps the last value it saw
    /// knows when to publish the settings again (the MQTT face's `settings` topic).
    public var settingsUpdates: UInt64 = 0

    public init() {}
}

/// The published state of one device: its poller writes, the Modbus thread reads.
///
/// One lock guards one small value; readers copy it out (a few retains) and work outside the lock.
public final class DeviceState: Sendable {
    public let unit: UInt8
    public let interval: Duration
    public let staleAfter: Duration
    /// The device's SunSpec image with models 103 and 203 left out: its marker, model 1 and end
    /// model are served from here whatever the age of the data.
    public let sunSpecStatic: [UInt16]
    private let snapshot = Locked(DeviceSnapshot())

    /// `carrying` a predecessor's snapshot keeps its data served across a reload; its last poll is
    /// served with `energy` (the counters the successor starts from) and this state's identity.
    /// `meterMode` is the configured one, known until a write confirms another (a carried
    /// snapshot's confirmed meter mode wins: it is what the device was last set to).
    public init(
        unit: UInt8, interval: Duration, staleAfter: Duration, common: CommonInfo? = nil,
        carrying: DeviceSnapshot? = nil, energy: EnergyCounters? = nil, meterMode: MeterMode? = nil
    ) {
        self.unit = unit
        self.interval = interval
        self.staleAfter = staleAfter
        let sunSpecStatic = SunSpecImage.staticImage(
            common ?? BridgeIdentity.common(serialNumber: "SEC1000-unit-\(unit)", unit: unit, version: bridgeVersion))
        self.sunSpecStatic = sunSpecStatic
        var initial = carrying ?? DeviceSnapshot()
        if let sample = initial.sample {
            initial.sample = Sample(reading: sample.reading, energy: energy ?? sample.energy, sunSpecBase: sunSpecStatic)
        }
        if !initial.control.meterModeWritten { initial.control.meterMode = meterMode }
        snapshot.withLock { $0 = initial }
    }

    public var current: DeviceSnapshot { snapshot.withLock { $0 } }

    /// Publishes a good poll.
    public func publish(_ sample: Sample) {
        snapshot.withLock {
            $0.sample = sample
            $0.goodPolls &+= 1
            $0.lastPollFailed = false
        }
    }

    /// Records a failed attempt.
    public func recordFailure(code: UInt16) {
        snapshot.withLock {
            $0.failedPolls &+= 1
            $0.lastError = code
            $0.lastPollFailed = true
            $0.failuresByCode[code, default: 0] &+= 1
        }
    }

    /// Records settings just read from the device.
    public func publish(settings: ExportSettings, meterMode: MeterMode? = nil) {
        snapshot.withLock {
            $0.control.settings = settings
            $0.control.settingsRead = .now
            if let meterMode {
                $0.control.meterMode = meterMode
                $0.control.meterModeWritten = true
            }
            $0.settingsUpdates &+= 1
        }
    }

    public func record(writeResult: WriteResult) {
        snapshot.withLock {
            $0.control.lastWriteResult = writeResult
            $0.writesByResult[writeResult, default: 0] &+= 1
            $0.settingsUpdates &+= 1
        }
    }

    public func recordClockSync(unixTime: UInt32) {
        snapshot.withLock { $0.control.lastClockSync = unixTime }
    }

    /// Whether `sample` may still be served at `now`.
    public func isFresh(_ sample: Sample, at now: ContinuousClock.Instant) -> Bool {
        now - sample.taken <= staleAfter
    }

    /// Block D (12 registers) as it reads at `now`.
    public func controlRegisters(_ snapshot: DeviceSnapshot, at now: ContinuousClock.Instant) -> [UInt16] {
        let control = snapshot.control
        let settings = control.settings
        var registers: [UInt16] = []
        RegisterMap.appendHighWordFirst(UInt32(bitPattern: settings?.exportLimit ?? 0), to: &registers)
        RegisterMap.appendHighWordFirst(UInt32(bitPattern: settings?.totalCapacity ?? 0), to: &registers)
        registers.append(UInt16(settings?.modeByte ?? 0))
        registers.append(UInt16(control.meterMode?.rawValue ?? 0))
        RegisterMap.appendHighWordFirst(UInt32(bitPattern: settings?.ctRatio ?? 0), to: &registers)
        registers.append(control.settingsRead.map { UInt16(clamping: (now - $0).components.seconds) } ?? 65535)
        registers.append(control.lastWriteResult.rawValue)
        RegisterMap.appendHighWordFirst(control.lastClockSync, to: &registers)
        return registers
    }

    /// Block C (10 registers) as it reads at `now`.
    public func statusRegisters(_ snapshot: DeviceSnapshot, at now: ContinuousClock.Instant) -> [UInt16] {
        var flags: RegisterMap.StatusFlags = []
        var age: UInt16 = 65535
        var time: UInt32 = 0
        if let sample = snapshot.sample {
            if isFresh(sample, at: now) { flags.insert(.fresh) }
            if sample.substituted { flags.insert(.substituted) }
            age = UInt16(clamping: (now - sample.taken).components.seconds)
            time = sample.unixTime
        } else {
            flags.insert(.noSample)
        }
        if snapshot.lastPollFailed { flags.insert(.lastPollFailed) }
        let interval = interval.components
        let intervalSeconds = UInt16(clamping: interval.seconds + (interval.attoseconds >= 500_000_000_000_000_000 ? 1 : 0))
        var registers: [UInt16] = [flags.rawValue, age]
        RegisterMap.appendHighWordFirst(snapshot.goodPolls, to: &registers)
        RegisterMap.appendHighWordFirst(snapshot.failedPolls, to: &registers)
        registers.append(snapshot.lastError)
        RegisterMap.appendHighWordFirst(time, to: &registers)
        registers.append(intervalSeconds)
        return registers
    }
}
