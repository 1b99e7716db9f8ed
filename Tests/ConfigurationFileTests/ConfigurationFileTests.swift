import Bridge
@testable import ConfigurationFile
import Foundation
import Testing

/// The configuration file's checks (Docs/configuration.md): every class of mistake is refused with
/// its message, line and column, and nothing of a refused file is used.
@Suite("Configuration file")
struct ConfigurationFileTests {
    static func parse(_ text: String, ownerOnly: Bool = true, keys: [ConfigurationKey] = ConfigurationKey.bridge) throws -> ConfigurationFile {
        try ConfigurationFile.parse(text, path: "bridge.yaml", ownerOnly: ownerOnly, keys: keys)
    }

    /// The error `text` gives, as `FILE:LINE:COLUMN: message`.
    static func failure(_ text: String, ownerOnly: Bool = true, keys: [ConfigurationKey] = ConfigurationKey.bridge) -> String? {
        do {
            _ = try ConfigurationFile.parse(text, path: "bridge.yaml", ownerOnly: ownerOnly, keys: keys)
            return nil
        } catch {
            return error.description
        }
    }

    struct Mistake: Sendable, CustomStringConvertible {
        let what: String
        let text: String
        let error: String
        var description: String { what }
    }

    static let mistakes: [Mistake] = [
        .init(what: "unknown key", text: "simulate: true\nintervall: 10\n",
              error: "bridge.yaml:2:1: unknown key 'intervall'; the keys are the long options of sec1000 bridge (Docs/configuration.md)"),
        .init(what: "impossible number", text: "simulate: true\ninterval: 1e300\n",
              error: "bridge.yaml:2:11: 'interval': expected a number of seconds from 0.01 to 86400"),
        .init(what: "negative number", text: "max-connections: -1\n",
              error: "bridge.yaml:1:18: 'max-connections': expected a whole number from 1 to 10000"),
        .init(what: "list for a value", text: "interval: [1, 2]\n", error: "bridge.yaml:1:11: 'interval' must be a single value, not a list"),
        .init(what: "mapping for a value", text: "listen:\n  host: x\n", error: "bridge.yaml:2:3: 'listen' must be a single value, not a mapping"),
        .init(what: "no value", text: "interval:\nsimulate: true\n", error: "bridge.yaml:1:10: 'interval' has no value"),
        .init(what: "flag not a boolean", text: "simulate: yes\n", error: "bridge.yaml:1:11: 'simulate' must be true or false"),
        .init(what: "quoted boolean", text: "simulate: \"true\"\n", error: "bridge.yaml:1:11: 'simulate' must be true or false"),
        .init(what: "choice", text: "grid-sign: positive\n",
              error: "bridge.yaml:1:12: 'grid-sign' must be one of import-positive, export-positive, not 'positive'"),
        .init(what: "list expected", text: "control-allow: 10.0.0.0/8\n",
              error: "bridge.yaml:1:16: 'control-allow' must be a list ([a, b], or one '- item' a line)"),
        .init(what: "bad list item", text: "control-allow:\n  - 10.0.0.0/8\n  - example.org\n",
              error: "bridge.yaml:3:5: 'control-allow': --control-allow example.org: 'example.org' is not a numeric IPv4 or IPv6 address"),
        .init(what: "bad listen address", text: "listen: host:port\n",
              error: "bridge.yaml:1:9: 'listen': invalid address 'host:port': 'port' is not a port (0-65535)"),
        .init(what: "duplicate key", text: "interval: 10\nsimulate: true\ninterval: 20\n",
              error: "bridge.yaml:1:1: 'interval' is given more than once in this mapping"),
        .init(what: "not YAML", text: "interval: 10\n  simulate: true\n", error: "bridge.yaml:2:11: not valid YAML: mapping values are not allowed in this context"),
        .init(what: "empty file", text: "", error: "bridge.yaml:1:1: the file is empty: give devices: or simulate: true"),
        .init(what: "not a mapping", text: "- interval\n", error: "bridge.yaml:1:1: the file must be a mapping of keys to values (key: value)"),
        .init(what: "devices not a list", text: "devices: 10.0.0.1\n",
              error: "bridge.yaml:1:10: 'devices' must be a list of devices, each a mapping with host:"),
        .init(what: "device not a mapping", text: "devices:\n  - 10.0.0.1\n", error: "bridge.yaml:2:5: a device must be a mapping (host: ..., unit: ...)"),
        .init(what: "device without host", text: "devices:\n  - unit: 2\n", error: "bridge.yaml:2:5: a device needs host:"),
        .init(what: "unknown device key", text: "devices:\n  - host: a\n    adress: b\n",
              error: "bridge.yaml:3:5: unknown device key 'adress'; a device has name, host, port, unit, serial, grid-sign, meter-mode, energy-import-wh, energy-export-wh, energy-production-wh"),
        .init(what: "impossible unit", text: "devices:\n  - host: a\n    unit: 248\n", error: "bridge.yaml:3:11: 'unit': expected a whole number from 1 to 247"),
        .init(what: "impossible port", text: "devices:\n  - host: a\n    port: 0\n", error: "bridge.yaml:3:11: 'port': expected a whole number from 1 to 65535"),
        .init(what: "duplicate unit", text: "devices:\n  - host: a\n    unit: 2\n  - host: b\n    unit: 2\n",
              error: "bridge.yaml:5:11: unit 2 is already the unit of the device on line 2; give each device its own unit"),
        .init(what: "duplicate default unit", text: "devices:\n  - host: a\n  - host: b\n",
              error: "bridge.yaml:3:5: unit 1 is already the unit of the device on line 2; give each device its own unit"),
        .init(what: "duplicate name", text: "devices:\n  - host: a\n    name: roof\n  - host: b\n    unit: 2\n    name: roof\n",
              error: "bridge.yaml:6:11: the name 'roof' is already the name of the device on line 2; give each device its own name"),
        .init(what: "duplicate derived name", text: "devices:\n  - host: a\n    serial: X.1\n  - host: b\n    unit: 2\n    serial: X:1\n",
              error: "bridge.yaml:4:5: the name 'X-1' is already the name of the device on line 2; give each device its own name"),
        .init(what: "invalid name", text: "devices:\n  - host: a\n    name: roof top\n",
              error: "bridge.yaml:3:11: 'name' must be 1 to 64 of the characters a-z A-Z 0-9 _ -, not 'roof top'"),
        .init(what: "invalid serial", text: "devices:\n  - host: a\n    serial: \"\"\n",
              error: "bridge.yaml:3:13: 'serial' must be 1 to 32 printable ASCII characters"),
        .init(what: "impossible energy", text: "devices:\n  - host: a\n    energy-import-wh: -5\n",
              error: "bridge.yaml:3:23: 'energy-import-wh': expected a whole number from 0 to 18446744073709551615"),
        .init(what: "device grid sign", text: "devices:\n  - host: a\n    grid-sign: inverted\n",
              error: "bridge.yaml:3:16: 'grid-sign' must be one of import-positive, export-positive, not 'inverted'"),
        .init(what: "device meter mode", text: "devices:\n  - host: a\n    meter-mode: total\n",
              error: "bridge.yaml:3:17: 'meter-mode' must be one of each-phase, sum, not 'total'"),
        .init(what: "meter mode", text: "meter-mode: 2\n",
              error: "bridge.yaml:1:13: 'meter-mode' must be one of each-phase, sum, not '2'"),
    ]

    @Test(arguments: mistakes)
    func everyMistakeIsRefusedWithItsLocation(mistake: Mistake) {
        #expect(Self.failure(mistake.text) == mistake.error)
    }

    @Test func aGoodFileBecomesTheBridgeArgumentsAndDevices() throws {
        let file = try Self.parse("""
            listen: "[::1]:1502"
            interval: 15
            enable-control: true
            sync-clock: false
            meter-mode: sum
            control-allow: [10.0.0.0/8, 192.168.1.7]
            devices:
              - host: 192.168.1.50
                unit: 2
                name: roof
                grid-sign: export-positive
                meter-mode: each-phase
                energy-import-wh: 1234
              - host: sec.example
                port: 4000
                unit: 3
                serial: SEC-3
            """)
        #expect(file.arguments(except: []) == [
            "--listen", "[::1]:1502", "--interval", "15", "--enable-control", "--meter-mode", "sum",
            "--control-allow", "10.0.0.0/8", "--control-allow", "192.168.1.7",
        ])
        #expect(file.devices == [
            DeviceConfiguration(
                address: .init(host: "192.168.1.50", port: 1234), unit: 2, name: "roof", gridSign: .exportPositive, meterMode: .eachPhase),
            DeviceConfiguration(address: .init(host: "sec.example", port: 4000), unit: 3, serialNumber: "SEC-3"),
        ])
        #expect(file.alignments == [2: [.gridImport: 1234]])
        #expect(file.devices.map(\.effectiveName) == ["roof", "SEC-3"])
        // An option the command line gives leaves the file's out, the whole list for a list.
        #expect(file.arguments(except: ["control-allow", "interval"]) == ["--listen", "[::1]:1502", "--enable-control", "--meter-mode", "sum"])
    }

    /// The default name is the serial number model 1 reports, made a valid id: stable across restarts.
    @Test func defaultNamesComeFromTheSerialNumber() {
        #expect(DeviceConfiguration(address: .init(host: "192.168.1.50", port: 1234)).effectiveName == "SEC1000-192-168-1-50-1234")
        #expect(DeviceConfiguration(address: .init(host: "a", port: 1), serialNumber: "AB 12/x").effectiveName == "AB-12-x")
        #expect(DeviceConfiguration(address: .init(host: "a", port: 1), serialNumber: "AB", name: "roof").effectiveName == "roof")
    }

    // MARK: Secrets

    /// No bridge option is a secret yet (MQTT's password will be); the mechanism is tested on a key of its own.
    static let keysWithSecret = ConfigurationKey.bridge + [ConfigurationKey("test-password", .value(check: nil), secret: true)]

    static func temporaryFile(_ text: String, mode: mode_t) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-config-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(chmod(path, mode) == 0)
        return path
    }

    @Test(arguments: [0o644, 0o640, 0o604] as [mode_t])
    func aSecretInAFileOthersCanReadIsRefused(mode: mode_t) throws {
        let path = try Self.temporaryFile("simulate: true\ntest-password: hunter2\n", mode: mode)
        defer { unlink(path) }
        #expect(throws: ConfigurationFileError(
            path: path, line: 2, column: 1,
            message: "'test-password' is a secret: the file must be readable by its owner only (chmod 600 \(path))")) {
            try ConfigurationFile.load(path, keys: Self.keysWithSecret)
        }
    }

    @Test(arguments: [0o600, 0o400] as [mode_t])
    func aSecretInAnOwnerOnlyFileIsAcceptedAndNeverPrinted(mode: mode_t) throws {
        let path = try Self.temporaryFile("simulate: true\ntest-password: hunter2\n", mode: mode)
        defer { unlink(path) }
        let file = try ConfigurationFile.load(path, keys: Self.keysWithSecret)
        #expect(file.arguments(except: []) == ["--simulate", "--test-password", "hunter2"])
        let printed = EffectiveConfiguration.yaml(
            BridgeConfiguration(devices: [DeviceConfiguration(address: .init(host: "127.0.0.1", port: 1))]), simulation: nil, logLevel: "info",
            secrets: file.entries.filter(\.secret).map(\.key))
        #expect(printed.contains("test-password: <redacted>"))
        #expect(!printed.contains("hunter2"))
    }

    @Test func aFileWithoutSecretsMayBeReadableByAll() throws {
        let path = try Self.temporaryFile("simulate: true\n", mode: 0o644)
        defer { unlink(path) }
        #expect(try ConfigurationFile.load(path).arguments(except: []) == ["--simulate"])
    }

    @Test func aMissingFileIsAnErrorNamingIt() {
        #expect(throws: ConfigurationFileError(
            path: "/nonexistent/bridge.yaml", line: 1, column: 1, message: "cannot open the file: No such file or directory")) {
            try ConfigurationFile.load("/nonexistent/bridge.yaml")
        }
    }

    // MARK: Merging with the command line

    @Test func commandLineOptionsReplaceTheFilesKeys() throws {
        let path = try Self.temporaryFile("interval: 15\ncontrol-allow: [10.0.0.0/8]\nsimulate: true\n", mode: 0o644)
        defer { unlink(path) }
        #expect(try ConfigurationFile.mergingFile(into: ["bridge", "--config", path, "--interval=20", "--control-allow", "127.0.0.1"])
            == ["bridge", "--simulate", "--config", path, "--interval=20", "--control-allow", "127.0.0.1"])
        #expect(try ConfigurationFile.mergingFile(into: ["bridge", "--config=\(path)"])
            == ["bridge", "--interval", "15", "--control-allow", "10.0.0.0/8", "--simulate", "--config=\(path)"])
        // Other commands, and a bridge without --config, are left alone.
        #expect(try ConfigurationFile.mergingFile(into: ["simulate", "--config", path]) == ["simulate", "--config", path])
        #expect(try ConfigurationFile.mergingFile(into: ["bridge", "--simulate"]) == ["bridge", "--simulate"])
        // After `--` nothing is an option.
        #expect(ConfigurationFile.configPath(in: ["bridge", "--", "--config", path]) == nil)
    }

    @Test func theExampleIsAValidFile() throws {
        let file = try Self.parse(exampleConfiguration, ownerOnly: false)
        #expect(file.entries.contains { $0.key == "simulate" && $0.arguments == ["--simulate"] })
        #expect(file.devices.isEmpty)
    }
}
