import MQTTClient

/// What `sec1000 bridge --mqtt` publishes and takes (Docs/mqtt.md).
public struct MQTTFaceConfiguration: Sendable {
    /// The broker and how to log in; the face sets the last will (`<prefix>/status offline`).
    public var connection: MQTTConfiguration
    /// The first levels of every topic (`--mqtt-prefix`).
    public var prefix: String
    /// Home Assistant discovery (`--ha-discovery`), under `homeAssistantPrefix` (`--ha-prefix`).
    public var homeAssistantDiscovery: Bool
    public var homeAssistantPrefix: String
    /// Settings changes from `<prefix>/<device>/set/...` (`--mqtt-control`).
    public var control: Bool
    /// Control on a broker connection without a username or client certificate (`--mqtt-control-unauthenticated`).
    public var controlUnauthenticated: Bool
    /// How often availability and settings are checked for a change (and the device list for a reload).
    public var tick: Duration

    public static let defaultPrefix = "sec1000"
    public static let defaultHomeAssistantPrefix = "homeassistant"

    public init(
        connection: MQTTConfiguration, prefix: String = MQTTFaceConfiguration.defaultPrefix, homeAssistantDiscovery: Bool = true,
        homeAssistantPrefix: String = MQTTFaceConfiguration.defaultHomeAssistantPrefix, control: Bool = false,
        controlUnauthenticated: Bool = false, tick: Duration = .milliseconds(250)
    ) {
        self.connection = connection
        self.prefix = prefix
        self.homeAssistantDiscovery = homeAssistantDiscovery
        self.homeAssistantPrefix = homeAssistantPrefix
        self.control = control
        self.controlUnauthenticated = controlUnauthenticated
        self.tick = tick
    }

    /// Why `prefix` cannot start topics, or `nil`: no wildcards, no empty level, not `$`-first.
    public static func prefixProblem(_ prefix: String) -> String? {
        if prefix.isEmpty { return "it is empty" }
        if prefix.contains("+") || prefix.contains("#") { return "it contains an MQTT wildcard (+ or #)" }
        if prefix.hasPrefix("$") { return "topics starting with $ are the broker's" }
        if prefix.split(separator: "/", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            return "it has an empty level (a leading, trailing or double /)"
        }
        if prefix.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "it contains a control character" }
        if prefix.utf8.count > 200 { return "it is longer than 200 bytes" }
        return nil
    }

    /// Checks what ties the options together; `controlEnabled` is `--enable-control`.
    public func validate(controlEnabled: Bool) throws(MQTTFaceConfigurationError) {
        if let problem = Self.prefixProblem(prefix) { throw .invalidPrefix("--mqtt-prefix", prefix, problem) }
        if let problem = Self.prefixProblem(homeAssistantPrefix) { throw .invalidPrefix("--ha-prefix", homeAssistantPrefix, problem) }
        if control && !controlEnabled { throw .controlWithoutEnableControl }
        if control && !connection.isAuthenticated && !controlUnauthenticated { throw .controlUnauthenticated }
        do { try connection.validate() } catch { throw .connection(error) }
    }
}

/// MQTT options that cannot work together, with what to change.
public enum MQTTFaceConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidPrefix(String, String, String)
    case controlWithoutEnableControl
    case controlUnauthenticated
    case connection(MQTTConfigurationError)

    public var description: String {
        switch self {
        case .invalidPrefix(let option, let value, let why): "\(option) \"\(value)\" cannot start MQTT topics: \(why)"
        case .controlWithoutEnableControl: "--mqtt-control needs --enable-control: MQTT control is a way into the device's settings, which stay closed without it"
        case .controlUnauthenticated:
            "--mqtt-control on a broker connection without authentication: MQTT carries no sender identity, so anyone who can reach the broker could change the export limit; give --mqtt-username (with a password) or a client certificate, and limit the set topics with the broker's ACL (Docs/mqtt.md), or pass --mqtt-control-unauthenticated to accept the risk"
        case .connection(let error): error.description
        }
    }
}
