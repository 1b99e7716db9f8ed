import SEC1000Client
import SEC1000Protocol

/// The writable settings of block D as `<prefix>/<device>/set/<setting>` topics, and their payloads.
enum Command {
    /// Longer payloads are refused unread: every valid one is a few characters.
    static let maximumPayload = 32

    static let settings = ["export_limit", "total_capacity", "control_mode", "meter_mode"]

    /// The change a payload asks for, or why it is not a valid value.
    static func change(setting: String, payload: [UInt8]) -> Result<SettingsChange, Refusal> {
        guard payload.count <= maximumPayload else {
            return .failure(Refusal("the payload has \(payload.count) bytes; a value has at most \(maximumPayload)"))
        }
        guard let text = String(validating: payload, as: UTF8.self) else {
            return .failure(Refusal("the payload is not UTF-8 text"))
        }
        let value = text.trimmingWhitespace()
        switch setting {
        case "export_limit":
            return watts(value, what: "export limit").map { SettingsChange(exportLimit: $0) }
        case "total_capacity":
            return watts(value, what: "total capacity").map { SettingsChange(totalCapacity: $0) }
        case "control_mode":
            if let mode = Payloads.controlModeNames.first(where: { $0.value == value })?.key
                ?? UInt8(value).flatMap(ControlMode.init(rawValue:)) {
                return .success(SettingsChange(controlMode: mode))
            }
            return .failure(Refusal("control mode \"\(shown(value))\" is not one of off, dred, rcr, by_value (or 0 to 3)"))
        case "meter_mode":
            if let mode = Payloads.meterModeNames.first(where: { $0.value == value })?.key
                ?? UInt8(value).flatMap(MeterMode.init(rawValue:)) {
                return .success(SettingsChange(meterMode: mode))
            }
            return .failure(Refusal("meter mode \"\(shown(value))\" is not each_phase or sum_of_phases (or 1, 2)"))
        default:
            return .failure(Refusal("\"\(shown(setting))\" is not a writable setting: use \(settings.joined(separator: ", "))"))
        }
    }

    /// A whole number of W from 0 to 2147483647; "3000.0" (how Home Assistant may send a number) is 3000.
    static func watts(_ text: String, what: String) -> Result<Int32, Refusal> {
        var digits = Substring(text)
        if digits.hasPrefix("+") { digits = digits.dropFirst() }
        if let dot = digits.firstIndex(of: "."), digits[digits.index(after: dot)...].allSatisfy({ $0 == "0" }) {
            digits = digits[..<dot]
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return .failure(Refusal("\(what) \"\(shown(text))\" is not a whole number of W"))
        }
        guard digits.count <= 10, let value = Int64(digits), value <= Int64(Int32.max) else {
            return .failure(Refusal("\(what) \(shown(text)) W is out of range: 0 to 2147483647 W"))
        }
        return .success(Int32(value))
    }

    static func shown(_ text: String) -> String { text.count > 40 ? String(text.prefix(40)) + "…" : text }

    struct Refusal: Error, Equatable {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
