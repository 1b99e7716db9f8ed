#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Quality of service of a message or a subscription (MQTT 3.1.1, section 4.3).
public enum MQTTQoS: Int32, Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Sent once; lost if the connection fails before the broker has it.
    case atMostOnce = 0
    /// Sent until the broker acknowledges it, so it may arrive twice.
    case atLeastOnce = 1
    /// Delivered exactly once, with a four-packet handshake.
    case exactlyOnce = 2

    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "QoS \(rawValue)" }
}

/// A message: what `publish` sends, what a subscription receives, what the last will says.
public struct MQTTMessage: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: MQTTQoS
    /// Sent: the broker keeps it for later subscribers. Received: it came from the broker's store
    /// (it was retained before this subscription), not live.
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: MQTTQoS = .atMostOnce, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }

    public init(topic: String, payload: String, qos: MQTTQoS = .atMostOnce, retain: Bool = false) {
        self.init(topic: topic, payload: Array(payload.utf8), qos: qos, retain: retain)
    }

    /// The payload as UTF-8 text (invalid sequences replaced).
    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// Where the broker is: `mqtt://HOST[:PORT]` (plain TCP, port 1883) or `mqtts://HOST[:PORT]`
/// (TLS, port 8883). An IPv6 address goes in brackets: `mqtt://[::1]:1883`.
public struct MQTTBrokerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var tls: Bool

    public init(host: String, port: UInt16? = nil, tls: Bool = false) {
        self.host = host
        self.tls = tls
        self.port = port ?? (tls ? 8883 : 1883)
    }

    /// Parses a broker URL; the error says what is wrong and what the URL should look like.
    public init(url text: String) throws(MQTTConfigurationError) {
        func bad(_ why: String) -> MQTTConfigurationError { .invalidBrokerURL(text, why) }
        let tls: Bool
        let rest: Substring
        if text.hasPrefix("mqtt://") {
            tls = false
            rest = text.dropFirst("mqtt://".count)
        } else if text.hasPrefix("mqtts://") {
            tls = true
            rest = text.dropFirst("mqtts://".count)
        } else {
            throw bad("it must start with mqtt:// (plain TCP) or mqtts:// (TLS)")
        }
        // A trailing slash is harmless; anything after it is not ours to interpret.
        var authority = rest
        if let slash = authority.firstIndex(of: "/") {
            guard authority[slash...] == "/" else { throw bad("a broker URL has no path, query or topic") }
            authority = authority[..<slash]
        }
        guard !authority.contains("@") else {
            throw bad("credentials do not belong in the URL (it shows in `ps` and logs): use the username and password options")
        }
        guard !authority.contains("?"), !authority.contains("#") else { throw bad("a broker URL has no query or fragment") }

        let host: Substring
        let portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw bad("an IPv6 address needs its closing ]") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.isEmpty {
                portText = nil
            } else if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else {
                throw bad("only :PORT may follow an IPv6 address in brackets")
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }), host.contains(":") else {
                throw bad("\"\(host)\" between brackets is not an IPv6 address")
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw bad("an IPv6 address must be written in brackets, as mqtt://[::1]:1883") }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
            guard !host.isEmpty else { throw bad("the host is missing") }
            guard host.utf8.count <= 253,
                  host.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." || $0 == "_" })
            else { throw bad("\"\(host)\" is not a host name or an IPv4 address") }
        }
        var port: UInt16?
        if let portText {
            guard let value = UInt16(portText), value != 0 else {
                throw bad("the port \"\(portText)\" is not a number from 1 to 65535")
            }
            port = value
        }
        self.init(host: String(host), port: port, tls: tls)
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(tls ? "mqtts" : "mqtt")://\(shownHost):\(port)"
    }
}

/// How long to wait between connection attempts: `initialDelay`, doubled after every failed
/// attempt up to `maximumDelay`; back to `initialDelay` once a connection has been accepted.
public struct MQTTReconnectPolicy: Sendable, Hashable {
    public var initialDelay: Duration
    public var maximumDelay: Duration

    public init(initialDelay: Duration = .milliseconds(500), maximumDelay: Duration = .seconds(30)) {
        self.initialDelay = initialDelay
        self.maximumDelay = max(maximumDelay, initialDelay)
    }

    /// The wait before attempt `failures + 1`, after `failures` failed attempts in a row.
    public func delay(afterFailures failures: Int) -> Duration {
        var delay = initialDelay
        for _ in 0..<max(0, failures) {
            delay *= 2
            if delay >= maximumDelay { return maximumDelay }
        }
        return min(delay, maximumDelay)
    }
}

/// Everything needed to reach one broker. Built by the caller; `validate()` checks it before a
/// connection uses it (MQTTConnection's initializer calls it).
public struct MQTTConfiguration: Sendable, CustomStringConvertible {
    public var broker: MQTTBrokerAddress
    /// The client identifier; the broker drops an older connection with the same one, so it must
    /// be unique per program instance and stable across its restarts.
    public var clientID: String
    public var username: String?
    /// Never logged and never part of `description`.
    public var password: String?
    /// TLS: the certificate authorities to trust (PEM). Without it, the system's trust store.
    public var caFile: String?
    /// TLS: a client certificate and its private key (PEM), both or neither.
    public var certificateFile: String?
    public var keyFile: String?
    /// Seconds between keepalive pings; also how long a connection attempt may wait for the
    /// broker's answer, which is why 0 (MQTT's "off") is not accepted.
    public var keepalive: Int
    /// Published by the broker if this client goes away without a clean disconnect.
    public var will: MQTTMessage?
    public var reconnect: MQTTReconnectPolicy

    public init(
        broker: MQTTBrokerAddress, clientID: String, username: String? = nil, password: String? = nil,
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
        keepalive: Int = 30, will: MQTTMessage? = nil, reconnect: MQTTReconnectPolicy = MQTTReconnectPolicy()
    ) {
        self.broker = broker
        self.clientID = clientID
        self.username = username
        self.password = password
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.keepalive = keepalive
        self.will = will
        self.reconnect = reconnect
    }

    /// Parses `url` and takes the rest as given.
    public init(
        url: String, clientID: String, username: String? = nil, password: String? = nil,
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
        keepalive: Int = 30, will: MQTTMessage? = nil, reconnect: MQTTReconnectPolicy = MQTTReconnectPolicy()
    ) throws(MQTTConfigurationError) {
        self.init(
            broker: try MQTTBrokerAddress(url: url), clientID: clientID, username: username, password: password,
            caFile: caFile, certificateFile: certificateFile, keyFile: keyFile, keepalive: keepalive, will: will,
            reconnect: reconnect)
    }

    /// Whether the broker learns who this client is: a username or a client certificate.
    public var isAuthenticated: Bool { username != nil || certificateFile != nil }

    /// Checks what can be checked before connecting, files included.
    public func validate() throws(MQTTConfigurationError) {
        guard !clientID.isEmpty, clientID.utf8.count <= 65535 else {
            throw .invalidClientID("a client id must have 1 to 65535 bytes")
        }
        guard (5...65535).contains(keepalive) else {
            throw .invalidKeepalive(keepalive)
        }
        if password != nil && username == nil {
            throw .passwordWithoutUsername
        }
        if let username, username.isEmpty { throw .emptyUsername }
        if !broker.tls {
            for (option, file) in [("CA file", caFile), ("client certificate", certificateFile), ("client key", keyFile)] where file != nil {
                throw .tlsOptionWithoutTLS(option)
            }
        }
        switch (certificateFile, keyFile) {
        case (.some, nil): throw .certificateWithoutKey
        case (nil, .some): throw .keyWithoutCertificate
        default: break
        }
        for (role, file) in [("CA file", caFile), ("client certificate", certificateFile), ("client key", keyFile)] {
            guard let file else { continue }
            if access(file, R_OK) != 0 {
                throw .unreadableFile(role: role, path: file, reason: String(cString: strerror(errno)))
            }
        }
        if let will {
            if let problem = MQTTTopic.publishProblem(will.topic) { throw .invalidWillTopic(will.topic, problem) }
        }
    }

    public var description: String {
        var parts = ["broker \(broker)", "client id \(clientID)"]
        if let username { parts.append("username \(username)") }
        if password != nil { parts.append("password set") }
        if let caFile { parts.append("CA file \(caFile)") }
        if let certificateFile { parts.append("client certificate \(certificateFile)") }
        parts.append("keepalive \(keepalive) s")
        return parts.joined(separator: ", ")
    }
}

/// A configuration that cannot work, with what to change.
public enum MQTTConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidBrokerURL(String, String)
    case invalidClientID(String)
    case invalidKeepalive(Int)
    case passwordWithoutUsername
    case emptyUsername
    case tlsOptionWithoutTLS(String)
    case certificateWithoutKey
    case keyWithoutCertificate
    case unreadableFile(role: String, path: String, reason: String)
    case invalidWillTopic(String, String)

    public var description: String {
        switch self {
        case .invalidBrokerURL(let url, let why):
            "invalid MQTT broker URL \"\(url)\": \(why) (expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT])"
        case .invalidClientID(let why): "invalid MQTT client id: \(why)"
        case .invalidKeepalive(let value): "MQTT keepalive \(value) s is out of range: use 5 to 65535 s"
        case .passwordWithoutUsername: "an MQTT password was given without a username: give the username too"
        case .emptyUsername: "the MQTT username is empty: leave it out or give a name"
        case .tlsOptionWithoutTLS(let option):
            "an MQTT \(option) was given for a plain mqtt:// broker: use an mqtts:// URL for TLS, or drop the option"
        case .certificateWithoutKey: "an MQTT client certificate was given without its key file: give both"
        case .keyWithoutCertificate: "an MQTT client key file was given without its certificate: give both"
        case .unreadableFile(let role, let path, let reason): "cannot read the MQTT \(role) \(path): \(reason)"
        case .invalidWillTopic(let topic, let why): "invalid MQTT last-will topic \"\(topic)\": \(why)"
        }
    }
}
