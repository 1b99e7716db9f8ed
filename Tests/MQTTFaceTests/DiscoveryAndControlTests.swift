import Bridge
import Foundation
import MQTTClient
import MQTTFace
import MQTTTestSupport
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// Home Assistant discovery, field by field against HA's MQTT discovery schema (full key names of
/// the sensor, number, select and binary_sensor platforms), and control from MQTT.
@Suite(.serialized) struct DiscoveryTests {
    static func config(_ received: Received, _ component: String, _ object: String) -> [String: Any]? {
        received.json("homeassistant/\(component)/sec1000_dev1/\(object)/config")
    }

    @Test func discoveryPayloadsFieldByField() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url, ["homeassistant/#"]) { _, received in
                try await FaceHarness.run(broker: broker.url) { _ in
                    try await waitUntil("discovery") { Self.config(received, "sensor", "control_mode") != nil }
                }
                let expected: [(String, String?, String?, String?, String)] = [
                    // object, device_class, unit, state_class, value key
                    ("grid_power", "power", "W", "measurement", "grid_power_w"),
                    ("import_power", "power", "W", "measurement", "import_power_w"),
                    ("export_power", "power", "W", "measurement", "export_power_w"),
                    ("inverters_power", "power", "W", "measurement", "inverters_power_w"),
                    ("load_power", "power", "W", "measurement", "load_power_w"),
                    ("voltage_l1", "voltage", "V", "measurement", "v1"), ("voltage_l3", "voltage", "V", "measurement", "v3"),
                    ("current_l2", "current", "A", "measurement", "i2"),
                    ("power_l1", "power", "W", "measurement", "phase_powers_w[0]"),
                    ("energy_import", "energy", "Wh", "total_increasing", "energy_import_wh"),
                    ("energy_export", "energy", "Wh", "total_increasing", "energy_export_wh"),
                    ("energy_production", "energy", "Wh", "total_increasing", "energy_production_wh"),
                    ("data_age", "duration", "s", "measurement", "data_age_s"),
                    ("poll_failures", nil, nil, "total_increasing", "failed_polls"),
                ]
                for (object, deviceClass, unit, stateClass, key) in expected {
                    let config = try #require(Self.config(received, "sensor", object), "\(object)")
                    #expect(config["unique_id"] as? String == "sec1000_dev1_\(object)")
                    #expect(config["state_topic"] as? String == "sec1000/dev1/state")
                    #expect(config["value_template"] as? String == "{{ value_json.\(key) }}")
                    #expect(config["device_class"] as? String == deviceClass, "\(object)")
                    #expect(config["unit_of_measurement"] as? String == unit, "\(object)")
                    #expect(config["state_class"] as? String == stateClass, "\(object)")
                    #expect((config["entity_category"] as? String) == (["data_age", "poll_failures"].contains(object) ? "diagnostic" : nil))
                    #expect(config["availability_mode"] as? String == "all")
                    let availability = try #require(config["availability"] as? [[String: Any]])
                    #expect(availability.compactMap { $0["topic"] as? String } == ["sec1000/status", "sec1000/dev1/availability"])
                    let device = try #require(config["device"] as? [String: Any])
                    #expect(device["identifiers"] as? [String] == ["sec1000_sec1000_dev1"])
                    #expect(device["manufacturer"] as? String == "GoodWe")
                    #expect(device["model"] as? String == "SEC1000")
                    #expect(device["sw_version"] as? String == bridgeVersion)
                    #expect(device["via_device"] as? String == "sec1000_bridge_bridge-under-test")
                    #expect((config["origin"] as? [String: Any])?["name"] as? String == "sec1000")
                    // Only keys HA's schemas know.
                    let known: Set = ["name", "unique_id", "state_topic", "value_template", "device_class", "unit_of_measurement",
                                      "state_class", "suggested_display_precision", "entity_category", "availability",
                                      "availability_mode", "device", "origin"]
                    #expect(Set(config.keys).subtracting(known).isEmpty, "\(object): \(Set(config.keys).subtracting(known))")
                }
                // The via_device exists: the bridge's own device.
                let bridge = try #require(received.json("homeassistant/binary_sensor/sec1000_bridge_bridge-under-test/status/config"))
                #expect(bridge["state_topic"] as? String == "sec1000/status")
                #expect(bridge["payload_on"] as? String == "online")
                #expect(bridge["payload_off"] as? String == "offline")
                #expect(bridge["device_class"] as? String == "connectivity")
                #expect((bridge["device"] as? [String: Any])?["identifiers"] as? [String] == ["sec1000_bridge_bridge-under-test"])
                // Without MQTT control, the settings as sensors; the number and select cleared.
                let limit = try #require(Self.config(received, "sensor", "export_limit"))
                #expect(limit["state_topic"] as? String == "sec1000/dev1/settings")
                #expect(limit["device_class"] as? String == "power")
                let mode = try #require(Self.config(received, "sensor", "control_mode"))
                #expect(mode["device_class"] as? String == "enum")
                #expect(mode["options"] as? [String] == ["off", "dred", "rcr", "by_value"])
                #expect(received.last("homeassistant/number/sec1000_dev1/export_limit/config")?.payload == [])
                #expect(received.last("homeassistant/select/sec1000_dev1/control_mode/config")?.payload == [])
                let meter = try #require(Self.config(received, "sensor", "meter_mode"))
                #expect(meter["options"] as? [String] == ["each_phase", "sum_of_phases"])
                #expect(meter["entity_category"] as? String == "diagnostic")
                #expect(received.last("homeassistant/select/sec1000_dev1/meter_mode/config")?.payload == [])
                #expect(Set(received.all.compactMap { $0.payload.isEmpty ? nil : $0.topic }).allSatisfy { $0.hasSuffix("/config") })
            }
        }
    }

    @Test func withControlTheSettingsAreNumberAndSelect() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url, ["homeassistant/#"]) { _, received in
                try await FaceHarness.run(
                    broker: broker.url, configure: { $0.control.enabled = true; $0.control.limits.maxExportLimit = 6000 },
                    face: { $0.control = true; $0.controlUnauthenticated = true }
                ) { _ in
                    try await waitUntil("discovery") { Self.config(received, "select", "control_mode") != nil }
                }
                let number = try #require(Self.config(received, "number", "export_limit"))
                #expect(number["command_topic"] as? String == "sec1000/dev1/set/export_limit")
                #expect(number["state_topic"] as? String == "sec1000/dev1/settings")
                #expect(number["value_template"] as? String == "{{ value_json.export_limit_w }}")
                #expect(number["min"] as? Int == 0)
                #expect(number["max"] as? Int == 6000)
                #expect(number["step"] as? Int == 1)
                #expect(number["unit_of_measurement"] as? String == "W")
                #expect(number["mode"] as? String == "box")
                let select = try #require(Self.config(received, "select", "control_mode"))
                #expect(select["command_topic"] as? String == "sec1000/dev1/set/control_mode")
                #expect(select["options"] as? [String] == ["off", "dred", "rcr", "by_value"])
                // The meter mode, which a limit change needs and the device does not report, can be set too.
                let meter = try #require(Self.config(received, "select", "meter_mode"))
                #expect(meter["command_topic"] as? String == "sec1000/dev1/set/meter_mode")
                #expect(meter["value_template"] as? String == "{{ value_json.meter_mode }}")
                #expect(meter["options"] as? [String] == ["each_phase", "sum_of_phases"])
                #expect(meter["entity_category"] as? String == "config")
                #expect(received.last("homeassistant/sensor/sec1000_dev1/export_limit/config")?.payload == [])
                #expect(received.last("homeassistant/sensor/sec1000_dev1/meter_mode/config")?.payload == [])
            }
        }
    }
}

@Suite(.serialized) struct ControlTests {
    static func isSet(_ request: Request?) -> Bool {
        switch request {
        case .setExportLimit, .setControl: true
        default: false
        }
    }

    /// Publishes `payload` to `set/<setting>` and returns the result message that follows.
    static func command(
        _ client: MQTTConnection, _ received: Received, _ setting: String, _ payload: [UInt8]
    ) async throws -> [String: Any] {
        let before = received.on("sec1000/dev1/control/result").count
        try client.publish(topic: "sec1000/dev1/set/\(setting)", payload: payload, qos: .atLeastOnce)
        try await waitUntil("the result of \(setting)", timeout: .seconds(20)) { received.on("sec1000/dev1/control/result").count > before }
        let message = received.on("sec1000/dev1/control/result")[before]
        return try #require(try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any])
    }

    static func run(
        _ broker: MosquittoBroker, logger: LogRecorder = LogRecorder(), enabled: Bool = true,
        _ body: @Sendable (FaceHarness, MQTTConnection, Received) async throws -> Void
    ) async throws {
        try await withSubscriber(broker.url, ["sec1000/+/control/result", "sec1000/+/settings"]) { client, received in
            try await FaceHarness.run(
                broker: broker.url, logger: logger.logger,
                configure: { $0.control.enabled = enabled; $0.control.limits.maxExportLimit = 6000; $0.control.writeTimeout = .seconds(5) },
                face: { $0.control = true; $0.controlUnauthenticated = true }
            ) { bridge in
                try await waitUntil("the bridge's subscription") {
                    bridge.face.connection.isConnected && bridge.runtime.states[0].current.control.settings != nil
                }
                try await body(bridge, client, received)
            }
        }
    }

    @Test func confirmedChangesAreReadBackAndPublished() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await Self.run(broker) { bridge, client, received in
                let meter = try await Self.command(client, received, "meter_mode", Array("sum_of_phases".utf8))
                #expect(meter["outcome"] as? String == "confirmed")
                let result = try await Self.command(client, received, "export_limit", Array("3000".utf8))
                #expect(result["outcome"] as? String == "confirmed", "\(result)")
                #expect(result["setting"] as? String == "export_limit")
                #expect(result["payload"] as? String == "3000")
                #expect((result["settings"] as? [String: Any])?["export_limit_w"] as? Int == 3000)
                #expect(bridge.device.settings.exportLimit == 3000)
                #expect(bridge.runtime.states[0].current.control.lastWriteResult == .confirmed)
                // Home Assistant's number may send "2500.0".
                #expect(try await Self.command(client, received, "export_limit", Array("2500.0".utf8))["outcome"] as? String == "confirmed")
                #expect(bridge.device.settings.exportLimit == 2500)
                let mode = try await Self.command(client, received, "control_mode", Array("off".utf8))
                #expect(mode["outcome"] as? String == "confirmed")
                #expect(bridge.device.settings.mode == .off)
                // The settings topic follows every write.
                try await waitUntil("settings after the writes") {
                    (received.json("sec1000/dev1/settings")?["control_mode"] as? String) == "off"
                        && (received.json("sec1000/dev1/settings")?["export_limit_w"] as? Int) == 2500
                }
            }
        }
    }

    @Test func refusedByValidationLeavesTheDeviceUntouched() async throws {
        try await MosquittoBroker.withBroker { broker in
            let log = LogRecorder()
            try await Self.run(broker, logger: log) { bridge, client, received in
                _ = try await Self.command(client, received, "meter_mode", Array("1".utf8))
                let before = bridge.device.settings
                let sets = bridge.device.records.filter { Self.isSet($0.request) }.count
                let result = try await Self.command(client, received, "export_limit", Array("7000".utf8))
                #expect(result["outcome"] as? String == "invalid")
                #expect((result["message"] as? String)?.contains("--max-export-limit") == true)
                #expect(bridge.device.settings == before)
                #expect(bridge.device.records.filter { Self.isSet($0.request) }.count == sets)
                #expect(bridge.runtime.states[0].current.control.lastWriteResult == .refusedByValidation)
                #expect(log.contains("control write failed") && log.contains("limit=7000W"))
            }
        }
    }

    @Test func badPayloadsAreRefusedWithAResultAndAnAuditLine() async throws {
        try await MosquittoBroker.withBroker { broker in
            let log = LogRecorder()
            try await Self.run(broker, logger: log) { bridge, client, received in
                let before = bridge.device.settings
                let requests = bridge.device.records.count
                for (setting, payload) in [
                    ("export_limit", Array("abc".utf8)), ("export_limit", Array("-5".utf8)), ("export_limit", Array("99999999999".utf8)),
                    ("export_limit", Array("1e3".utf8)), ("export_limit", [UInt8](repeating: 0x39, count: 100_000)),
                    ("export_limit", [0xFF, 0xFE]), ("control_mode", Array("turbo".utf8)), ("meter_mode", Array("3".utf8)),
                    ("colour", Array("red".utf8)),
                ] {
                    let result = try await Self.command(client, received, setting, payload)
                    #expect(result["outcome"] as? String == "refused", "\(setting) \(payload.prefix(20))")
                    #expect(result["settings"] != nil)
                }
                #expect(bridge.device.settings == before)
                // Polls go on; no settings transaction was sent.
                #expect(!bridge.device.records.dropFirst(requests).contains { Self.isSet($0.request) })
                #expect(log.contains("control write refused") && log.contains("client=mqtt"))
                #expect(bridge.runtime.states[0].current.control.lastWriteResult == .refusedByValidation)
            }
        }
    }

    @Test func notConfirmedAndUnreachable() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await Self.run(broker) { bridge, client, received in
                _ = try await Self.command(client, received, "meter_mode", Array("1".utf8))
                bridge.device.setSetBehaviour(ignore: true, drop: false)
                let ignored = try await Self.command(client, received, "export_limit", Array("1234".utf8))
                #expect(ignored["outcome"] as? String == "not_confirmed", "\(ignored)")
                #expect(bridge.runtime.states[0].current.control.lastWriteResult == .notConfirmed)
                bridge.device.stop()
                let unreachable = try await Self.command(client, received, "export_limit", Array("1500".utf8))
                #expect(["unreachable", "timed_out"].contains(unreachable["outcome"] as? String ?? ""), "\(unreachable)")
                #expect(bridge.runtime.states[0].current.control.lastWriteResult == .unreachable)
            }
        }
    }

    @Test func controlNotEnabledIsRefused() async throws {
        try await MosquittoBroker.withBroker { broker in
            let log = LogRecorder()
            try await Self.run(broker, logger: log) { bridge, client, received in
                // --enable-control taken away by a reload: MQTT control follows it.
                var configuration = bridge.runtime.configuration
                configuration.control.enabled = false
                _ = try bridge.runtime.reload(configuration)
                let before = bridge.device.settings
                let result = try await Self.command(client, received, "control_mode", Array("off".utf8))
                #expect(result["outcome"] as? String == "refused")
                #expect((result["message"] as? String)?.contains("--enable-control") == true)
                #expect(bridge.device.settings == before)
                #expect(log.contains("control write refused"))
            }
        }
    }

    @Test func faceRefusesControlWithoutEnableControlOrAuthentication() throws {
        let connection = try MQTTConfiguration(url: "mqtt://127.0.0.1:1883", clientID: "x")
        #expect(throws: MQTTFaceConfigurationError.controlWithoutEnableControl) {
            try MQTTFaceConfiguration(connection: connection, control: true, controlUnauthenticated: true).validate(controlEnabled: false)
        }
        #expect(throws: MQTTFaceConfigurationError.controlUnauthenticated) {
            try MQTTFaceConfiguration(connection: connection, control: true).validate(controlEnabled: true)
        }
        var authenticated = connection
        authenticated.username = "bridge"
        try MQTTFaceConfiguration(connection: authenticated, control: true).validate(controlEnabled: true)
        try MQTTFaceConfiguration(connection: connection, control: true, controlUnauthenticated: true).validate(controlEnabled: true)
    }
}
