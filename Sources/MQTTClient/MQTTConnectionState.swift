/// Why a broker refused a connection (the CONNACK return codes of MQTT 3.1.1).
public enum MQTTRefusal: Sendable, Hashable, CustomStringConvertible {
    case unacceptableProtocolVersion
    case identifierRejected
    case serverUnavailable
    case badUsernameOrPassword
    case notAuthorized
    case other(Int32)

    init(code: Int32) {
        switch code {
        case 1: self = .unacceptableProtocolVersion
        case 2: self = .identifierRejected
        case 3: self = .serverUnavailable
        case 4: self = .badUsernameOrPassword
        case 5: self = .notAuthorized
        default: self = .other(code)
        }
    }

    public var description: String {
        switch self {
        case .unacceptableProtocolVersion: "the broker does not speak MQTT 3.1.1"
        case .identifierRejected: "the broker rejected the client id"
        case .serverUnavailable: "the broker is unavailable"
        case .badUsernameOrPassword: "bad username or password"
        case .notAuthorized: "not authorised: check the username, password or client certificate and the broker's ACL"
        case .other(let code): "refused with code \(code)"
        }
    }
}

/// Why the client is not connected.
public enum MQTTDisconnectReason: Sendable, Hashable, CustomStringConvertible {
    /// The broker could not be reached: name lookup, TCP connect or TLS handshake failed, or it
    /// did not answer the connect in time.
    case unreachable(String)
    /// The broker answered and refused this client.
    case refused(MQTTRefusal)
    /// An accepted connection ended (the broker went away, the network failed, a keepalive was missed).
    case lost(String)

    public var description: String {
        switch self {
        case .unreachable(let why): "broker unreachable: \(why)"
        case .refused(let refusal): "connection refused: \(refusal)"
        case .lost(let why): "connection lost: \(why)"
        }
    }
}

/// Where a connection stands.
public enum MQTTConnectionState: Sendable, Hashable, CustomStringConvertible {
    /// Made, not started.
    case idle
    /// A connection attempt is under way.
    case connecting
    /// The broker accepted the connection.
    case connected
    /// Not connected; another attempt follows after the back-off.
    case disconnected(MQTTDisconnectReason)
    /// `shutdown()` has finished; nothing more happens.
    case shutDown

    public var description: String {
        switch self {
        case .idle: "idle"
        case .connecting: "connecting"
        case .connected: "connected"
        case .disconnected(let reason): "disconnected (\(reason))"
        case .shutDown: "shut down"
        }
    }
}

/// Counters since the connection was made, for metrics.
public struct MQTTConnectionStatistics: Sendable, Hashable {
    /// Connections the broker accepted (the first and every reconnect).
    public var connects = 0
    /// Connection attempts that failed (unreachable or refused).
    public var failedAttempts = 0
    /// Accepted connections that ended other than by `shutdown()`.
    public var connectionLosses = 0
    /// Messages handed to libmosquitto for sending.
    public var published = 0
    /// Messages replaced in the outbox by a newer one for the same topic before they could be sent.
    public var replacedInOutbox = 0
    /// Messages that arrived for subscriptions.
    public var received = 0
    /// Arrived messages a subscriber's full buffer pushed out (its oldest), uncollected.
    public var droppedIncoming = 0
    /// Topics waiting in the outbox now.
    public var outboxTopics = 0
    /// Messages handed to libmosquitto and not yet written (QoS 0) or acknowledged by the broker
    /// (QoS 1, 2), as last seen by the network thread.
    public var unconfirmed = 0
    /// The most `unconfirmed` has been: never above `MQTTConnection.handOverLimit`.
    public var unconfirmedHighWater = 0
    /// Times the heap was trimmed after a connection's initial backlog had been sent.
    public var trims = 0

    public init() {}
}

/// What `publish`, `subscribe` or making a connection refused.
public enum MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    case configuration(MQTTConfigurationError)
    /// libmosquitto refused a setting (for TLS: an unreadable or invalid certificate or key).
    case setupFailed(String)
    case invalidTopic(String, String)
    case invalidFilter(String, String)
    case payloadTooLarge(Int)
    /// The connection has been shut down.
    case shutDown

    public var description: String {
        switch self {
        case .configuration(let error): error.description
        case .setupFailed(let why): "cannot set up the MQTT client: \(why)"
        case .invalidTopic(let topic, let why): "cannot publish to MQTT topic \"\(topic)\": \(why)"
        case .invalidFilter(let filter, let why): "cannot subscribe to MQTT topic filter \"\(filter)\": \(why)"
        case .payloadTooLarge(let size): "an MQTT payload of \(size) bytes is larger than MQTT allows (268435455)"
        case .shutDown: "the MQTT connection has been shut down"
        }
    }
}
