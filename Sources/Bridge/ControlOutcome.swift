import ModbusServer
import SEC1000Client
import SEC1000Protocol

/// How a settings change from any front end ended: the one type that knows how each front end
/// reports it (the Modbus exception, register 309, the exit code of `sec1000 settings set`).
public enum ControlOutcome: Sendable, Equatable, CustomStringConvertible {
    /// The device took the change; the read-back shows it.
    case confirmed(before: ExportSettings, after: ExportSettings)
    /// Refused before any transaction: control is off, the requester is not allowed, or the
    /// request does not name a valid change. `exception` is the Modbus answer it gets.
    case refused(reason: String, exception: ModbusException)
    /// The change breaks a rule (capacity, the operator's maximum...); the device was not touched.
    case invalid(String)
    /// The device was told, but reading the settings back shows other values.
    case notConfirmed(expected: ExportSettings, actual: ExportSettings)
    /// The device could not be reached.
    case unreachable(SEC1000Error)
    /// No confirmation within the write timeout (waiting in line included); it may or may not
    /// have taken effect if it had started.
    case timedOut(Duration)
    /// The device's line of changes is full; nothing was queued.
    case busy
    /// The bridge stopped before the change could start; the device was not touched.
    case shutDown

    public init(_ error: ControlError) {
        switch error {
        case .invalid(let reason): self = .invalid(reason)
        case .notConfirmed(let expected, let actual): self = .notConfirmed(expected: expected, actual: actual)
        case .unreachable(let cause): self = .unreachable(cause)
        case .timedOut(let limit): self = .timedOut(limit)
        }
    }

    /// The Modbus answer: `nil` is the normal write response.
    public var modbusException: ModbusException? {
        switch self {
        case .confirmed: nil
        case .refused(_, let exception): exception
        case .invalid: .illegalDataValue
        case .notConfirmed: .serverDeviceFailure
        case .unreachable, .timedOut, .shutDown: .gatewayTargetFailedToRespond
        case .busy: .serverDeviceBusy
        }
    }

    /// Register 309 after this outcome; `nil` leaves it as it was (a refusal that never reached
    /// validation of the values, or a change that never got in line).
    public var writeResult: WriteResult? {
        switch self {
        case .confirmed: .confirmed
        case .refused(_, let exception): exception == .illegalDataValue ? .refusedByValidation : nil
        case .invalid: .refusedByValidation
        case .notConfirmed: .notConfirmed
        case .unreachable, .timedOut: .unreachable
        case .busy, .shutDown: nil
        }
    }

    /// `sec1000 settings set`'s exit code (Docs/cli.md): 0 confirmed, 2 refused by validation,
    /// 3 not confirmed, 1 not reached.
    public var exitCode: Int32 {
        switch self {
        case .confirmed: 0
        case .refused, .invalid: 2
        case .notConfirmed: 3
        case .unreachable, .timedOut, .busy, .shutDown: 1
        }
    }

    /// The outcome as the audit line and MQTT's result message name it.
    public var description: String {
        switch self {
        case .confirmed: "confirmed"
        case .refused(let reason, _): "refused: \(reason)"
        case .invalid(let reason): ControlError.invalid(reason).description
        case .notConfirmed(let expected, let actual): ControlError.notConfirmed(expected: expected, actual: actual).description
        case .unreachable(let cause): ControlError.unreachable(cause).description
        case .timedOut(let limit): ControlError.timedOut(limit).description
        case .busy: "refused: the device is busy with earlier changes; try again later"
        case .shutDown: "not carried out: the bridge is stopping, or a reload removed or replaced the device; the device was not touched"
        }
    }
}
