import Bridge
import SEC1000Client
import SEC1000Protocol
import Testing

@Suite("Control validation without a device")
struct ControlPlanTests {
    let current = ExportSettings(mode: .byValue, totalCapacity: 8000, ctRatio: 1, exportLimit: 5000)

    @Test(arguments: [
        (SettingsChange(), "nothing to change"),
        (SettingsChange(exportLimit: 8001, meterMode: .eachPhase), "above the total capacity"),
        (SettingsChange(totalCapacity: 4000, meterMode: .eachPhase), "above the total capacity"),
        (SettingsChange(exportLimit: -1, meterMode: .eachPhase), "must not be negative"),
        (SettingsChange(totalCapacity: 0, meterMode: .eachPhase), "must be positive"),
        (SettingsChange(exportLimit: 4500, meterMode: .eachPhase), "operator's maximum"),
        (SettingsChange(exportLimit: 3000), "meter mode is not known"),
    ])
    func refusals(change: SettingsChange, reason: String) {
        #expect {
            try ControlPlan(change: change, current: current, knownMeterMode: nil, limits: ControlLimits(maxExportLimit: 4000))
        } throws: { error in
            guard case .invalid(let message) = error as? ControlError else { return false }
            return message.contains(reason)
        }
    }

    @Test func aLimitChangeUsesTheKnownMeterMode() throws {
        let plan = try ControlPlan(change: SettingsChange(exportLimit: 3000), current: current, knownMeterMode: .sumOfPhases, limits: ControlLimits())
        #expect(plan.requests == [.setExportLimit(totalCapacity: 8000, exportLimit: 3000, meterMode: .sumOfPhases)])
        #expect(plan.expected == ExportSettings(mode: .byValue, totalCapacity: 8000, ctRatio: 1, exportLimit: 3000))
    }

    @Test(arguments: [
        (ControlMode.byValue, ControlMode.dred, [Request.setControl(.dred, on: true), .setControl(.byValue, on: false)]),
        (.byValue, .off, [.setControl(.byValue, on: false)]),
        (.off, .rcr, [.setControl(.rcr, on: true)]),
        (.dred, .dred, [.setControl(.dred, on: true)]),
    ])
    func modeChangesSwitchTheNewSourceOnBeforeTheOldOff(from: ControlMode, to: ControlMode, requests: [Request]) throws {
        var settings = current
        settings.modeByte = from.rawValue
        let plan = try ControlPlan(change: SettingsChange(controlMode: to), current: settings, knownMeterMode: nil, limits: ControlLimits())
        #expect(plan.requests == requests)
        #expect(plan.expected.modeByte == to.rawValue)
    }

    @Test func anUnknownModeByteSwitchesEveryOtherSourceOff() throws {
        var settings = current
        settings.modeByte = 9
        let plan = try ControlPlan(change: SettingsChange(controlMode: .off), current: settings, knownMeterMode: nil, limits: ControlLimits())
        #expect(plan.requests == [.setControl(.byValue, on: false), .setControl(.dred, on: false), .setControl(.rcr, on: false)])
    }

    @Test(arguments: [
        ("192.168.1.0/24", "192.168.1.77", true),
        ("192.168.1.0/24", "192.168.2.1", false),
        ("10.0.0.7", "10.0.0.7", true),
        ("10.0.0.7", "10.0.0.8", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("fd00::/8", "fd12::1", true),
        ("fd00::/8", "fe80::1", false),
        ("10.0.0.0/8", "fd00::1", false),
        ("127.0.0.0/9", "127.127.0.1", true),
        ("127.0.0.0/9", "127.128.0.1", false),
    ])
    func allowListMatching(network: String, host: String, inside: Bool) throws {
        #expect(try AddressRange(parsing: network).contains(host: host) == inside)
    }

    @Test(arguments: ["", "10.0.0.0/33", "fd00::/129", "host.example", "10.0.0.0/x", "1.2.3.4/8/9"])
    func badNetworksAreRefused(text: String) {
        #expect(throws: ConfigurationError.self) { try AddressRange(parsing: text) }
    }
}
