import Bridge
import MQTTClient
import OptionValues
import SEC1000Protocol
import Sockets
#if canImport(Glibc)
import Glibc
#endif

/// One top-level key of the configuration file: the long option of `sec1000 bridge` with the same
/// name, checked by the same parser, so a value means in the file what it means as a flag.
public struct ConfigurationKey: Sendable {
    public enum Kind: Sendable {
        /// `true` gives the flag, `false` leaves it off.
        case flag
        /// A flag that is on by default: `true` gives `--NAME`, `false` gives `--no-NAME`.
        case toggle
        /// One value; `check` throws what the flag's parser would (nil: any text).
        case value(check: (@Sendable (String) throws -> Void)?)
        /// One value out of a fixed set.
        case choice([String])
        /// A YAML list: the option given once per item.
        case list(check: (@Sendable (String) throws -> Void)?)
    }

    public let name: String
    public let kind: Kind
    /// A secret is accepted in the file only if the file is readable by its owner only, and is
    /// never printed (`config check` shows `<redacted>`).
    public let secret: Bool

    public init(_ name: String, _ kind: Kind, secret: Bool = false) {
        self.name = name
        self.kind = kind
        self.secret = secret
    }

    /// A number key whose parser is `parse` (one of `NumberArgument`'s).
    public static func number<T>(_ name: String, _ parse: @escaping @Sendable (String) throws -> T) -> ConfigurationKey {
        ConfigurationKey(name, .value(check: { _ = try parse($0) }))
    }
}

extension ConfigurationKey {
    /// The keys of `sec1000 bridge`; their ranges are those of BridgeCommand.swift,
    /// SimulateCommand.swift and EnergyOptions.swift (a test holds the two to each other).
    /// Not keys: `device`, `serial-number` and `energy-*-wh`, which are properties of `devices:`
    /// items, and `config` itself.
    public static let bridge: [ConfigurationKey] = [
        ConfigurationKey("simulate", .flag),
        ConfigurationKey("listen", .value(check: { text in
            _ = try SocketAddress(parsing: text, defaultPort: 502)
        })),
        // The HTTP face (Docs/http.md): HOST:PORT, off without it.
        ConfigurationKey("http", .value(check: { text in _ = try HTTPAddressArgument.parse(text) })),
        .number("interval", NumberArgument.seconds(0.01...86400)),
        .number("stale-after", NumberArgument.seconds(0.01...864000)),
        .number("max-connections", NumberArgument.integer(1...10000)),
        .number("max-connections-per-address", NumberArgument.integer(1...10000)),
        .number("idle-timeout", NumberArgument.seconds(0.01...604800)),
        ConfigurationKey("grid-sign", .choice(GridSign.allCases.map(\.rawValue))),
        .number("timeout", NumberArgument.seconds(Ranges.deviceTimeout)),
        .number("retries", NumberArgument.integer(Ranges.retries)),
        .number("retry-wait", NumberArgument.seconds(Ranges.retryWait)),
        .number("min-gap", NumberArgument.seconds(0...3600)),
        .number("max-backoff", NumberArgument.seconds(0...86400)),
        ConfigurationKey("log-level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"])),
        ConfigurationKey("enable-control", .flag),
        ConfigurationKey("control-allow", .list(check: { text in
            _ = try AddressRange(parsing: text)
        })),
        .number("max-export-limit", NumberArgument.integer(0...Int32.max)),
        .number("write-timeout", NumberArgument.seconds(0.01...3600)),
        .number("settings-every", NumberArgument.integer(1...1_000_000)),
        ConfigurationKey("sync-clock", .flag),
        ConfigurationKey("meter-mode", .choice(MeterMode.allCases.map(\.optionName))),
        .number("max-plant-power", NumberArgument.decimal(1...2_147_483_647, unit: "W")),
        ConfigurationKey("energy-state", .value(check: { text in
            if text.isEmpty { throw OutOfRange(expected: "a path") }
        })),
        .number("energy-save-interval", NumberArgument.seconds(0.01...86400)),
        // The simulated device (with `simulate: true`).
        ConfigurationKey("capture", .flag),
        .number("peak-power", NumberArgument.decimal(0...7_000_000, unit: "W")),
        .number("day-length", NumberArgument.seconds(60...31_536_000)),
        .number("short-answer-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("zero-power-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("bad-checksum-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("truncate-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("hang-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("drop-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("implausible-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("slow-rate", NumberArgument.decimal(0...1, unit: "probability")),
        .number("delay", NumberArgument.seconds(0...3600)),
        .number("seed", NumberArgument.integer(0...UInt64.max)),
        ConfigurationKey("set-status", .choice(["ack", "nak"])),
        ConfigurationKey("ignore-sets", .flag),
        ConfigurationKey("drop-sets", .flag),
        // The MQTT face (Docs/mqtt.md); the password only from a file or the environment.
        ConfigurationKey("mqtt", .value(check: { text in _ = try MQTTBrokerAddress(url: text) })),
        ConfigurationKey("mqtt-ca-file", .value(check: readableFile)),
        ConfigurationKey("mqtt-cert-file", .value(check: readableFile)),
        ConfigurationKey("mqtt-key-file", .value(check: readableFile)),
        ConfigurationKey("mqtt-username", .value(check: nil)),
        ConfigurationKey("mqtt-password-file", .value(check: readableFile)),
        ConfigurationKey("mqtt-prefix", .value(check: nil)),
        ConfigurationKey("mqtt-client-id", .value(check: nil)),
        ConfigurationKey("ha-discovery", .toggle),
        ConfigurationKey("ha-prefix", .value(check: nil)),
        ConfigurationKey("mqtt-control", .flag),
        ConfigurationKey("mqtt-control-unauthenticated", .flag),
    ]

    /// A file the bridge must read at start (the MQTT TLS and password files).
    static let readableFile: @Sendable (String) throws -> Void = { text in
        guard access(text, R_OK) == 0 else { throw OutOfRange(expected: "a readable file") }
    }

    /// The keys of one item of `devices:`.
    static let deviceKeys = [
        "name", "host", "port", "unit", "serial", "grid-sign", "meter-mode", "energy-import-wh", "energy-export-wh", "energy-production-wh",
    ]
}
