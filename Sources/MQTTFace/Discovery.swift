import Bridge
import JSONText
import SEC1000Protocol

/// Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery):
/// one HA device per SEC1000, linked to one HA device for the bridge, with full (not abbreviated)
/// keys of the sensor, number, select and binary_sensor schemas.
struct Discovery: Sendable {
    let topics: Topics
    /// `--mqtt-control`: the export limit and control mode as number and select, else as sensors.
    let control: Bool
    /// The highest export limit the number entity offers (`--max-export-limit`, else the largest W).
    let maxExportLimit: Int32
    let version: String
    /// The bridge's HA device identifier, from the client id (unique per bridge instance).
    let bridgeIdentifier: String

    init(topics: Topics, control: Bool, maxExportLimit: Int32?, version: String, clientID: String) {
        self.topics = topics
        self.control = control
        self.maxExportLimit = maxExportLimit ?? Int32.max
        self.version = version
        bridgeIdentifier = "sec1000_bridge_" + Self.sanitized(clientID)
    }

    /// `[a-zA-Z0-9_-]` only, as HA's discovery topics and unique ids want.
    static func sanitized(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", "_", "-": $0
            default: "_"
            }
        }))
    }

    var origin: JSON { .object([("name", .string("sec1000")), ("sw_version", .string(version))]) }

    /// The HA node id of a device: prefix and device id, so two bridges with other prefixes never collide.
    func node(_ device: String) -> String { Self.sanitized(topics.prefix) + "_" + device }

    func configTopic(component: String, node: String, object: String) -> String {
        "\(topics.homeAssistantPrefix)/\(component)/\(node)/\(object)/config"
    }

    // MARK: - The bridge

    var bridgeTopic: String { configTopic(component: "binary_sensor", node: bridgeIdentifier, object: "status") }

    /// The bridge's own HA device: every SEC1000 names it as `via_device`, which must exist.
    var bridgeConfig: JSON {
        .object([
            ("name", .string("Connection")),
            ("unique_id", .string(bridgeIdentifier + "_status")),
            ("state_topic", .string(topics.status)),
            ("payload_on", .string("online")),
            ("payload_off", .string("offline")),
            ("device_class", .string("connectivity")),
            ("entity_category", .string("diagnostic")),
            ("device", .object([
                ("identifiers", .array([.string(bridgeIdentifier)])),
                ("name", .string("SEC1000 bridge \(topics.prefix)")),
                ("manufacturer", .string("sec1000")),
                ("model", .string("sec1000 bridge")),
                ("sw_version", .string(version)),
            ])),
            ("origin", origin),
        ])
    }

    // MARK: - A SEC1000

    /// One entity: its component, object id and the keys that differ between entities.
    struct Entity {
        let component: String
        let object: String
        let keys: [(String, JSON)]
    }

    static func sensor(
        _ object: String, _ name: String, value: String, unit: String? = nil, deviceClass: String? = nil,
        stateClass: String? = "measurement", diagnostic: Bool = false, settings: Bool = false, precision: Int? = nil
    ) -> (String, String, [(String, JSON)], Bool) {
        var keys: [(String, JSON)] = [("name", .string(name)), ("value_template", .string("{{ value_json.\(value) }}"))]
        if let deviceClass { keys.append(("device_class", .string(deviceClass))) }
        if let unit { keys.append(("unit_of_measurement", .string(unit))) }
        if let stateClass { keys.append(("state_class", .string(stateClass))) }
        if let precision { keys.append(("suggested_display_precision", .int(Int64(precision)))) }
        if diagnostic { keys.append(("entity_category", .string("diagnostic"))) }
        return (object, name, keys, settings)
    }

    /// The entities of every SEC1000: (object id, name, keys, reads the settings topic).
    static let sensors: [(String, String, [(String, JSON)], Bool)] = {
        var list = [
            sensor("grid_power", "Grid power", value: "grid_power_w", unit: "W", deviceClass: "power"),
            sensor("import_power", "Import power", value: "import_power_w", unit: "W", deviceClass: "power"),
            sensor("export_power", "Export power", value: "export_power_w", unit: "W", deviceClass: "power"),
            sensor("inverters_power", "Inverters power", value: "inverters_power_w", unit: "W", deviceClass: "power"),
            sensor("load_power", "Load power", value: "load_power_w", unit: "W", deviceClass: "power"),
        ]
        for phase in 1...3 {
            list.append(sensor("voltage_l\(phase)", "Voltage L\(phase)", value: "v\(phase)", unit: "V", deviceClass: "voltage", precision: 1))
        }
        for phase in 1...3 {
            list.append(sensor("current_l\(phase)", "Current L\(phase)", value: "i\(phase)", unit: "A", deviceClass: "current", precision: 2))
        }
        for phase in 1...3 {
            list.append(sensor("power_l\(phase)", "Power L\(phase)", value: "phase_powers_w[\(phase - 1)]", unit: "W", deviceClass: "power"))
        }
        list += [
            sensor("energy_import", "Energy imported", value: "energy_import_wh", unit: "Wh", deviceClass: "energy", stateClass: "total_increasing", precision: 0),
            sensor("energy_export", "Energy exported", value: "energy_export_wh", unit: "Wh", deviceClass: "energy", stateClass: "total_increasing", precision: 0),
            sensor("energy_production", "Energy produced", value: "energy_production_wh", unit: "Wh", deviceClass: "energy", stateClass: "total_increasing", precision: 0),
            sensor("data_age", "Data age", value: "data_age_s", unit: "s", deviceClass: "duration", diagnostic: true, precision: 1),
            sensor("poll_failures", "Poll failures", value: "failed_polls", stateClass: "total_increasing", diagnostic: true),
        ]
        return list
    }()

    static let controlModeOptions = ["off", "dred", "rcr", "by_value"]
    static let meterModeOptions = MeterMode.allCases.map(Payloads.meterModeName)

    /// Every discovery message of `device` (a name in topics): (topic, payload), and the topics of
    /// the other variant (control on or off) with `nil`, to clear what an earlier run left.
    func messages(for device: DeviceConfiguration) -> [(topic: String, payload: JSON?)] {
        let name = device.effectiveName
        let node = node(name)
        let common: [(String, JSON)] = [
            ("availability", .array([
                .object([("topic", .string(topics.status))]),
                .object([("topic", .string(topics.availability(name)))]),
            ])),
            ("availability_mode", .string("all")),
            ("device", .object([
                ("identifiers", .array([.string("sec1000_" + node)])),
                ("name", .string("SEC1000 \(name)")),
                ("manufacturer", .string("GoodWe")),
                ("model", .string("SEC1000")),
                ("serial_number", .string(device.effectiveSerialNumber)),
                ("sw_version", .string(version)),
                ("via_device", .string(bridgeIdentifier)),
            ])),
            ("origin", origin),
        ]
        func entity(_ component: String, _ object: String, _ keys: [(String, JSON)], stateTopic: String) -> (String, JSON?) {
            let head: [(String, JSON)] = [("unique_id", .string("\(node)_\(object)")), ("state_topic", .string(stateTopic))]
            return (configTopic(component: component, node: node, object: object), .object(head + keys + common))
        }
        var messages: [(topic: String, payload: JSON?)] = Self.sensors.map { object, _, keys, settings in
            entity("sensor", object, keys, stateTopic: settings ? topics.settings(name) : topics.state(name))
        }
        let limitAsNumber = entity("number", "export_limit", [
            ("name", .string("Export limit")),
            ("value_template", .string("{{ value_json.export_limit_w }}")),
            ("command_topic", .string(topics.set(name, "export_limit"))),
            ("min", .int(0)),
            ("max", .int(Int64(maxExportLimit))),
            ("step", .int(1)),
            ("mode", .string("box")),
            ("unit_of_measurement", .string("W")),
            ("device_class", .string("power")),
            ("qos", .int(1)),
        ], stateTopic: topics.settings(name))
        // A setting with a few named values: a `select` that commands it, or a read-only enum sensor.
        func choice(_ object: String, _ title: String, options: [String], select category: String?, sensor sensorCategory: String?)
            -> (select: (String, JSON?), sensor: (String, JSON?)) {
            let head: [(String, JSON)] = [("name", .string(title)), ("value_template", .string("{{ value_json.\(object) }}"))]
            let choices: (String, JSON) = ("options", .array(options.map(JSON.string)))
            let select = entity("select", object, head + [("command_topic", .string(topics.set(name, object))), choices]
                + (category.map { [("entity_category", .string($0))] } ?? []) + [("qos", .int(1))], stateTopic: topics.settings(name))
            let sensor = entity("sensor", object, head + [("device_class", .string("enum")), choices]
                + (sensorCategory.map { [("entity_category", .string($0))] } ?? []), stateTopic: topics.settings(name))
            return (select, sensor)
        }
        let mode = choice("control_mode", "Control mode", options: Self.controlModeOptions, select: nil, sensor: nil)
        // The device does not report its meter mode: unknown until configured or written.
        let meterMode = choice("meter_mode", "Meter mode", options: Self.meterModeOptions, select: "config", sensor: "diagnostic")
        let limitAsSensor = entity("sensor", "export_limit", [
            ("name", .string("Export limit")),
            ("value_template", .string("{{ value_json.export_limit_w }}")),
            ("device_class", .string("power")),
            ("unit_of_measurement", .string("W")),
        ], stateTopic: topics.settings(name))
        if control {
            messages += [limitAsNumber, mode.select, meterMode.select]
            messages += [limitAsSensor.0, mode.sensor.0, meterMode.sensor.0].map { ($0, nil) }
        } else {
            messages += [limitAsSensor, mode.sensor, meterMode.sensor]
            messages += [limitAsNumber.0, mode.select.0, meterMode.select.0].map { ($0, nil) }
        }
        return messages
    }

    /// Every discovery topic of `device`, both variants: what a removed device clears.
    func allTopics(for device: DeviceConfiguration) -> [String] {
        let node = node(device.effectiveName)
        return Self.sensors.map { configTopic(component: "sensor", node: node, object: $0.0) } + [
            configTopic(component: "number", node: node, object: "export_limit"),
            configTopic(component: "select", node: node, object: "control_mode"),
            configTopic(component: "sensor", node: node, object: "export_limit"),
            configTopic(component: "sensor", node: node, object: "control_mode"),
            configTopic(component: "select", node: node, object: "meter_mode"),
            configTopic(component: "sensor", node: node, object: "meter_mode"),
        ]
    }
}
