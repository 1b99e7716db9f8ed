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
        // IPv4-mapped IPv6 on either side (issue 14, defect 8): one address, two spellings.
        ("::ffff:127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "::ffff:127.0.0.1", true),
        ("::ffff:0:0/96", "203.0.113.9", true),
        ("::ffff:0:0/96", "fd00::1", false),
        ("::ffff:10.0.0.0/104", "10.1.2.3", true),
        ("::ffff:10.0.0.0/104", "11.1.2.3", false),
        ("10.0.0.0/8", "::ffff:10.9.9.9", true),
        ("10.0.0.0/8", "::ffff:11.9.9.9", false),
        ("::/0", "192.0.2.1", true),
        ("::/0", "fd00::1", true),
        ("fd00::/8", "192.0.2.1", false),
        ("0.0.0.0/0", "::1", false),
    ])
    func allowListMatching(network: String, host: String, inside: Bool) throws {
        #expect(try AddressRange(parsing: network).contains(host: host) == inside)
    }

    /// Strict syntax (issue 14, defect 8): `/-0` was read as `/0` and let every client write.
    @Test(arguments: [
        "", "10.0.0.0/33", "fd00::/129", "host.example", "10.0.0.0/x", "1.2.3.4/8/9",
        "10.9.9.9/-0", "10.9.9.9/+8", "10.9.9.9/008", "10.9.9.9/08", "10.9.9.9/", "10.9.9.9/ 8", "10.9.9.9/8 ",
        " 10.9.9.9", "10.9.9.9/0x8", "010.0.0.1", "10.0.0", "10.0.0.1.2", "fd00::/-8", "fd00::/+64", "[fd00::]/8",
        "localhost", "10.0.0.0/1e1", "10.0.0.0/٨",
    ])
    func badNetworksAreRefused(text: String) {
        #expect(throws: ConfigurationError.self) { try AddressRange(parsing: text) }
    }

    @Test(arguments: [
        ("10.9.9.9/0", "0.0.0.0/0"), ("10.9.9.9/8", "10.0.0.0/8"), ("10.9.9.9", "10.9.9.9/32"),
        ("::ffff:127.0.0.1", "127.0.0.1/32"), ("::ffff:0:0/96", "0.0.0.0/0"), ("fd00::/8", "fd00::/8"),
    ])
    func goodNetworksReadAsWritten(text: String, canonical: String) throws {
        let range = try AddressRange(parsing: text)
        #expect(range.description.hasSuffix("/\(canonical.split(separator: "/")[1])"), "\(text) -> \(range)")
        #expect(try range == AddressRange(parsing: canonical))
    }

    /// A reload builds a new state from the old: a meter mode a write confirmed is what the device
    /// has and stays; one only configured follows the configuration.
    @Test func aReloadKeepsAWrittenMeterModeAndTakesAChangedConfiguredOne() {
        func state(carrying snapshot: DeviceSnapshot?, configured: MeterMode?) -> DeviceState {
            DeviceState(unit: 1, interval: .seconds(1), staleAfter: .seconds(3), carrying: snapshot, meterMode: configured)
        }
        let first = state(carrying: nil, configured: .eachPhase)
        #expect(first.current.control.meterMode == .eachPhase)
        #expect(state(carrying: first.current, configured: .sumOfPhases).current.control.meterMode == .sumOfPhases)
        #expect(state(carrying: first.current, configured: nil).current.control.meterMode == nil)
        first.publish(settings: current, meterMode: .eachPhase)
        #expect(state(carrying: first.current, configured: .sumOfPhases).current.control.meterMode == .eachPhase)
    }
}
