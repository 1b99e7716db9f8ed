import Hex
import SEC1000Protocol

/// A requested change of the export-limit settings; `nil` fields stay as the device has them.
public struct SettingsChange: Sendable, Equatable {
    public var exportLimit: Int32?
    public var totalCapacity: Int32?
    public var controlMode: ControlMode?
    public var meterMode: MeterMode?

    public init(exportLimit: Int32? = nil, totalCapacity: Int32? = nil, controlMode: ControlMode? = nil, meterMode: MeterMode? = nil) {
        self.exportLimit = exportLimit
        self.totalCapacity = totalCapacity
        self.controlMode = controlMode
        self.meterMode = meterMode
    }

    public var isEmpty: Bool { self == SettingsChange() }
}

/// The operator's limits on what may be written.
public struct ControlLimits: Sendable, Equatable {
    /// The highest export limit anyone may set, W; `nil`: only the plant's capacity bounds it.
    public var maxExportLimit: Int32?

    public init(maxExportLimit: Int32? = nil) { self.maxExportLimit = maxExportLimit }
}

/// Why a settings change was not carried out.
public enum ControlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The change breaks a rule; nothing was sent to the device.
    case invalid(String)
    /// The device was told, but reading the settings back shows other values.
    case notConfirmed(expected: ExportSettings, actual: ExportSettings)
    /// The device could not be reached.
    case unreachable(SEC1000Error)
    /// The change was not confirmed within the time allowed; it may or may not have taken effect.
    case timedOut(Duration)

    public var description: String {
        switch self {
        case .invalid(let reason):
            "refused: \(reason); the device was not touched"
        case .notConfirmed(let expected, let actual):
            "the device did not confirm: asked for \(describe(expected)), it holds \(describe(actual))"
        case .unreachable(let error):
            "device unreachable: \(error)"
        case .timedOut(let limit):
            "no confirmation within \(limit) (--write-timeout): the change may or may not have taken effect; read the settings"
        }
    }
}

func describe(_ s: ExportSettings) -> String {
    "mode \(s.mode.map { "\($0)" } ?? "0x\([s.modeByte].hexDescription)"), export limit \(s.exportLimit) W, capacity \(s.totalCapacity) W"
}

/// What a validated change sends to the device, and what the read-back must show.
public struct ControlPlan: Sendable, Equatable {
    /// A 0x42 set, when the limit, the capacity or the meter mode change.
    public var setLimit: (capacity: Int32, limit: Int32, meterMode: MeterMode)?
    /// The control source to leave on alone (`.off`: none), when the mode changes.
    public var controlMode: ControlMode?
    /// The source the device had on before the change (at most one is on at a time).
    public var previousMode: ControlMode?
    /// The settings the read-back must show (the CT ratio is not compared).
    public var expected: ExportSettings

    public static func == (a: ControlPlan, b: ControlPlan) -> Bool {
        a.setLimit?.capacity == b.setLimit?.capacity && a.setLimit?.limit == b.setLimit?.limit
            && a.setLimit?.meterMode == b.setLimit?.meterMode && a.controlMode == b.controlMode
            && a.previousMode == b.previousMode && a.expected == b.expected
    }

    /// Checks `change` against the device's `current` settings and the operator's `limits`.
    ///
    /// `knownMeterMode` is the meter mode last confirmed written: the device does not report it,
    /// and a 0x42 set must carry one, so a limit change without it must name the meter mode.
    public init(
        change: SettingsChange, current: ExportSettings, knownMeterMode: MeterMode?, limits: ControlLimits
    ) throws(ControlError) {
        guard !change.isEmpty else { throw .invalid("nothing to change") }
        let capacity = change.totalCapacity ?? current.totalCapacity
        let limit = change.exportLimit ?? current.exportLimit
        if let value = change.totalCapacity, value <= 0 { throw .invalid("total capacity \(value) W must be positive") }
        if let value = change.exportLimit, value < 0 { throw .invalid("export limit \(value) W must not be negative") }
        if change.exportLimit != nil || change.totalCapacity != nil {
            guard limit <= capacity else {
                throw .invalid("export limit \(limit) W is above the total capacity \(capacity) W")
            }
        }
        if let value = change.exportLimit, let maximum = limits.maxExportLimit, value > maximum {
            throw .invalid("export limit \(value) W is above the operator's maximum \(maximum) W (--max-export-limit)")
        }
        var expected = current
        expected.totalCapacity = capacity
        expected.exportLimit = limit
        if change.exportLimit != nil || change.totalCapacity != nil || change.meterMode != nil {
            guard let meterMode = change.meterMode ?? knownMeterMode else {
                throw .invalid("the meter mode is not known (the device does not report it): give it with this change")
            }
            setLimit = (capacity, limit, meterMode)
        } else {
            setLimit = nil
        }
        controlMode = change.controlMode
        previousMode = current.mode
        if let mode = change.controlMode { expected.modeByte = mode.rawValue }
        self.expected = expected
    }

    /// The requests that carry the plan out, in order. The new control source is switched on
    /// before the old one is switched off, so the plant is never left without limitation in
    /// between. Only the source the mode byte names can be on; when the mode byte is not one
    /// the protocol knows, every other source is switched off to be sure.
    public var requests: [Request] {
        var requests: [Request] = []
        if let setLimit {
            requests.append(.setExportLimit(totalCapacity: setLimit.capacity, exportLimit: setLimit.limit, meterMode: setLimit.meterMode))
        }
        if let controlMode {
            if controlMode != .off { requests.append(.setControl(controlMode, on: true)) }
            let others: [ControlMode] = switch previousMode {
            case .off?: []
            case let previous?: [previous]
            case nil: [.byValue, .dred, .rcr]
            }
            for source in others where source != controlMode {
                requests.append(.setControl(source, on: false))
            }
        }
        return requests
    }
}

extension SEC1000Client {
    /// Reads the settings, validates `change`, carries it out, and reads the settings back.
    ///
    /// Returns the settings before the change and those the device confirmed. Any status byte is
    /// taken as "received" (the device answers ACK and NAK alike to sets that take effect): only
    /// the read-back decides.
    public func apply(
        _ change: SettingsChange, knownMeterMode: MeterMode?, limits: ControlLimits, policy: RetryPolicy
    ) async throws(ControlError) -> (before: ExportSettings, after: ExportSettings) {
        let current: ExportSettings
        do { current = try await readExportSettings(policy: policy) } catch { throw .unreachable(error) }
        let plan = try ControlPlan(change: change, current: current, knownMeterMode: knownMeterMode, limits: limits)
        for request in plan.requests {
            // `send` checks the answer echoes the command and is a status frame (length 6).
            do { _ = try await send(request, policy: policy) } catch { throw .unreachable(error) }
        }
        let readBack: ExportSettings
        do { readBack = try await readExportSettings(policy: policy) } catch { throw .unreachable(error) }
        var comparable = readBack
        comparable.ctRatio = plan.expected.ctRatio
        guard comparable == plan.expected else { throw .notConfirmed(expected: plan.expected, actual: readBack) }
        return (current, readBack)
    }
}
