import ArgumentParser
import Bridge
import Foundation
import MQTTClient
import MQTTFace

/// The bridge's MQTT options (Docs/mqtt.md). The password never comes from the command line
/// (it would show in `ps`): from `--mqtt-password-file` or `SEC1000_MQTT_PASSWORD`.
struct MQTTOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Publish to the MQTT broker at mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS): status, availability, state, settings, Home Assistant discovery (Docs/mqtt.md). Off unless given.",
            valueName: "url"),
        transform: { text in try MQTTBrokerAddress(url: text) })
    var mqtt: MQTTBrokerAddress?

    @Option(help: ArgumentHelp("TLS: the certificate authorities (PEM) to verify the broker with (default: the system's).", valueName: "file"))
    var mqttCaFile: String?

    @Option(help: ArgumentHelp("TLS: a client certificate (PEM) to log in with; needs --mqtt-key-file.", valueName: "file"))
    var mqttCertFile: String?

    @Option(help: ArgumentHelp("TLS: the client certificate's private key (PEM, no passphrase).", valueName: "file"))
    var mqttKeyFile: String?

    @Option(help: "The MQTT username; its password comes from --mqtt-password-file or the environment variable SEC1000_MQTT_PASSWORD.")
    var mqttUsername: String?

    @Option(help: ArgumentHelp("A file whose first line is the MQTT password (never give a password on the command line).", valueName: "file"))
    var mqttPasswordFile: String?

    @Option(help: "The first level(s) of every topic the bridge publishes.")
    var mqttPrefix: String = MQTTFaceConfiguration.defaultPrefix

    @Option(help: "The MQTT client id (default: sec1000-PREFIX-HOSTNAME); unique per bridge, the same across restarts.")
    var mqttClientId: String?

    @Flag(inversion: .prefixedNo, exclusivity: .chooseLast, help: "Publish Home Assistant MQTT discovery (on by default with --mqtt).")
    var haDiscovery = true

    @Option(help: "Home Assistant's discovery prefix.")
    var haPrefix: String = MQTTFaceConfiguration.defaultHomeAssistantPrefix

    @Flag(help: "Take settings changes from PREFIX/DEVICE/set/... (needs --enable-control and an authenticated broker connection).")
    var mqttControl = false

    @Flag(help: "Allow --mqtt-control on a broker connection without username or client certificate (anyone who reaches the broker may then change the settings).")
    var mqttControlUnauthenticated = false

    /// Whether any MQTT option other than --mqtt was given (they need --mqtt).
    var anyGiven: Bool {
        mqttCaFile != nil || mqttCertFile != nil || mqttKeyFile != nil || mqttUsername != nil || mqttPasswordFile != nil
            || mqttPrefix != MQTTFaceConfiguration.defaultPrefix || mqttClientId != nil || !haDiscovery
            || haPrefix != MQTTFaceConfiguration.defaultHomeAssistantPrefix || mqttControl || mqttControlUnauthenticated
    }

    /// The face's configuration, or `nil` without `--mqtt`; `environment` supplies SEC1000_MQTT_PASSWORD.
    func configuration(
        controlEnabled: Bool, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ValidationError) -> MQTTFaceConfiguration? {
        guard let mqtt else {
            if anyGiven { throw ValidationError("MQTT options need --mqtt mqtt://HOST[:PORT]") }
            return nil
        }
        var password: String?
        if let mqttPasswordFile {
            guard let text = try? String(contentsOfFile: mqttPasswordFile, encoding: .utf8) else {
                throw ValidationError("--mqtt-password-file \(mqttPasswordFile): cannot read it")
            }
            password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        } else if let fromEnvironment = environment["SEC1000_MQTT_PASSWORD"] {
            password = fromEnvironment
        }
        // A password from the environment without a username is left unused, not an error: the
        // variable may be set for another program.
        if mqttUsername == nil && mqttPasswordFile == nil { password = nil }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let configuration = MQTTFaceConfiguration(
            connection: MQTTConfiguration(
                broker: mqtt, clientID: mqttClientId ?? "sec1000-\(mqttPrefix)-\(host)".replacingOccurrences(of: "/", with: "-"),
                username: mqttUsername, password: password, caFile: mqttCaFile, certificateFile: mqttCertFile,
                keyFile: mqttKeyFile),
            prefix: mqttPrefix, homeAssistantDiscovery: haDiscovery, homeAssistantPrefix: haPrefix, control: mqttControl,
            controlUnauthenticated: mqttControlUnauthenticated)
        do { try configuration.validate(controlEnabled: controlEnabled) } catch { throw ValidationError(error.description) }
        return configuration
    }

    /// The options whose change needs a restart (all of them: the connection is made once).
    func changed(from other: MQTTOptions) -> [String] {
        var names: [String] = []
        if mqtt != other.mqtt { names.append("mqtt") }
        if mqttCaFile != other.mqttCaFile { names.append("mqtt-ca-file") }
        if mqttCertFile != other.mqttCertFile { names.append("mqtt-cert-file") }
        if mqttKeyFile != other.mqttKeyFile { names.append("mqtt-key-file") }
        if mqttUsername != other.mqttUsername { names.append("mqtt-username") }
        if mqttPasswordFile != other.mqttPasswordFile { names.append("mqtt-password-file") }
        if mqttPrefix != other.mqttPrefix { names.append("mqtt-prefix") }
        if mqttClientId != other.mqttClientId { names.append("mqtt-client-id") }
        if haDiscovery != other.haDiscovery { names.append("ha-discovery") }
        if haPrefix != other.haPrefix { names.append("ha-prefix") }
        if mqttControl != other.mqttControl { names.append("mqtt-control") }
        if mqttControlUnauthenticated != other.mqttControlUnauthenticated { names.append("mqtt-control-unauthenticated") }
        return names
    }
}

import HTTPFace

extension MQTTOptions {
    /// The MQTT face's series on the HTTP face's /metrics.
    static func metrics(of face: MQTTFace) -> [ExtraMetric] {
        let statistics = face.connection.statistics
        return [
            ExtraMetric(
                name: "sec1000_mqtt_connected", help: "1 while the MQTT broker has accepted the bridge's connection, else 0.",
                kind: .gauge, value: face.connection.isConnected ? 1 : 0),
            ExtraMetric(
                name: "sec1000_mqtt_connects_total", help: "Connections the MQTT broker accepted.", kind: .counter,
                value: Double(statistics.connects)),
            ExtraMetric(
                name: "sec1000_mqtt_connection_losses_total", help: "MQTT connections lost after the broker accepted them.",
                kind: .counter, value: Double(statistics.connectionLosses)),
            ExtraMetric(
                name: "sec1000_mqtt_messages_published_total", help: "MQTT messages handed to the broker.", kind: .counter,
                value: Double(statistics.published)),
            ExtraMetric(
                name: "sec1000_mqtt_outbox_topics", help: "Topics whose latest message waits for the broker.", kind: .gauge,
                value: Double(statistics.outboxTopics)),
        ]
    }
}

extension MQTTOptions {
    /// What the HTTP face calls at each scrape; `nil` without MQTT.
    static func metricsSource(_ face: MQTTFace?) -> (@Sendable () -> [ExtraMetric])? {
        guard let face else { return nil }
        return { metrics(of: face) }
    }
}
