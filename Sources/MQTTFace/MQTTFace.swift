import Bridge
import JSONText
import Locking
import Logging
import MQTTClient
import ModbusServer
import SEC1000Client
import ServiceLifecycle

/// The MQTT face of `sec1000 bridge --mqtt` (Docs/mqtt.md): the bridge's status, each device's
/// availability, state and settings, Home Assistant discovery, and (opt-in) settings changes.
///
/// It reads the bridge only through `BridgeRuntime` and submits changes through each device's
/// one command path; nothing here waits for the broker (`MQTTConnection` never does), so Modbus
/// serving and polling go on whatever the broker does. One loop (`tick`) checks every device's
/// availability and settings and follows reloads; each good poll is published as it comes.
public final class MQTTFace: Service, Sendable {
    public let connection: MQTTConnection
    public let configuration: MQTTFaceConfiguration
    let publisher: Publisher
    private let readings: AsyncStream<DeviceUpdate>
    private let homeAssistantStatus: AsyncStream<MQTTMessage>?
    private let commands: AsyncStream<MQTTMessage>?

    /// Checks the configuration (`validate(controlEnabled:)`) and makes the connection; nothing is
    /// sent until `run()`.
    public init(runtime: BridgeRuntime, configuration: MQTTFaceConfiguration, logger: Logger) throws(MQTTFaceError) {
        do { try configuration.validate(controlEnabled: runtime.configuration.control.enabled) } catch {
            throw .configuration(error)
        }
        self.configuration = configuration
        let topics = Topics(prefix: configuration.prefix, homeAssistantPrefix: configuration.homeAssistantPrefix)
        var connectionConfiguration = configuration.connection
        connectionConfiguration.will = MQTTMessage(topic: topics.status, payload: "offline", qos: .atLeastOnce, retain: true)
        var logger = logger
        logger[metadataKey: "face"] = "mqtt"
        let publisher = Publisher(
            runtime: runtime, configuration: configuration, topics: topics,
            discovery: Discovery(
                topics: topics, control: configuration.control, maxExportLimit: runtime.configuration.control.limits.maxExportLimit,
                version: runtime.configuration.version, clientID: configuration.connection.clientID),
            logger: logger)
        self.publisher = publisher
        do {
            connection = try MQTTConnection(
                configuration: connectionConfiguration, logger: logger,
                finalMessage: MQTTMessage(topic: topics.status, payload: "offline", qos: .atLeastOnce, retain: true),
                onConnect: { connection in publisher.republishAll(on: connection) })
            readings = runtime.readings.subscribe()
            homeAssistantStatus = configuration.homeAssistantDiscovery ? try connection.subscribe(topics.homeAssistantStatus) : nil
            commands = configuration.control ? try connection.subscribe(topics.setFilter, qos: .atLeastOnce) : nil
        } catch {
            throw .connection(error)
        }
    }

    /// Publishes until graceful shutdown, then says `offline` and disconnects cleanly.
    public func run() async throws {
        connection.start()
        let connection = connection
        let publisher = publisher
        let tick = configuration.tick
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [readings] in
                for await update in readings { publisher.publishState(update, on: connection) }
            }
            group.addTask {
                while !Task.isCancelled {
                    publisher.tick(on: connection)
                    try? await Task.sleep(for: tick)
                }
            }
            if let homeAssistantStatus {
                group.addTask {
                    for await message in homeAssistantStatus where message.text == "online" {
                        publisher.republishDiscovery(on: connection)
                    }
                }
            }
            if let commands {
                group.addTask {
                    for await message in commands { publisher.command(message, on: connection) }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await connection.shutdown()
    }
}

/// Why the MQTT face cannot start.
public enum MQTTFaceError: Error, Sendable, CustomStringConvertible {
    case configuration(MQTTFaceConfigurationError)
    case connection(MQTTError)

    public var description: String {
        switch self {
        case .configuration(let error): error.description
        case .connection(let error): "cannot set up the MQTT connection: \(error)"
        }
    }
}

/// What the face has published, and the code that publishes: shared by the face's loops and the
/// connection's thread (its `onConnect` hook). Publishing happens under `memory`'s lock, so two
/// of them never overtake each other (`publish` only queues; it never waits for the network).
final class Publisher: Sendable {
    let runtime: BridgeRuntime
    let configuration: MQTTFaceConfiguration
    let topics: Topics
    let discovery: Discovery
    let logger: Logger
    private let memory = Locked(Memory())

    struct Known {
        var device: DeviceConfiguration
        var online: Bool
        var settingsUpdates: UInt64?
    }

    struct Memory {
        /// Devices announced, by device id.
        var devices: [String: Known] = [:]
        var published = 0
    }

    init(runtime: BridgeRuntime, configuration: MQTTFaceConfiguration, topics: Topics, discovery: Discovery, logger: Logger) {
        self.runtime = runtime
        self.configuration = configuration
        self.topics = topics
        self.discovery = discovery
        self.logger = logger
    }

    /// Messages handed to the connection so far.
    var published: Int { memory.withLock { $0.published } }

    private func send(_ message: MQTTMessage, on connection: MQTTConnection, _ memory: inout Memory) {
        do {
            try connection.publish(message)
            memory.published += 1
        } catch {
            // Only a bug (a bad topic) or a shutdown gets here; neither must stop the face.
            logger.debug("MQTT message not published", metadata: ["topic": "\(message.topic)", "error": "\(error)"])
        }
    }

    private func retained(_ topic: String, _ text: String) -> MQTTMessage {
        MQTTMessage(topic: topic, payload: text, qos: .atLeastOnce, retain: true)
    }

    private func isOnline(_ state: DeviceState, _ snapshot: DeviceSnapshot, now: ContinuousClock.Instant) -> Bool {
        guard let sample = snapshot.sample else { return false }
        return state.isFresh(sample, at: now)
    }

    // MARK: - Each device

    /// Announces `service`'s device: discovery, availability, settings (if read).
    private func announce(_ service: DeviceService, on connection: MQTTConnection, _ memory: inout Memory, now: ContinuousClock.Instant) {
        let name = service.device.effectiveName
        let snapshot = service.state.current
        let online = isOnline(service.state, snapshot, now: now)
        if configuration.homeAssistantDiscovery { sendDiscovery(of: service.device, on: connection, &memory) }
        send(retained(topics.availability(name), online ? "online" : "offline"), on: connection, &memory)
        var settingsUpdates: UInt64?
        if snapshot.control.settings != nil {
            send(retained(topics.settings(name), Payloads.settings(snapshot.control, now: now).text), on: connection, &memory)
            settingsUpdates = snapshot.settingsUpdates
        }
        memory.devices[name] = Known(device: service.device, online: online, settingsUpdates: settingsUpdates)
    }

    private func sendDiscovery(of device: DeviceConfiguration, on connection: MQTTConnection, _ memory: inout Memory) {
        for (topic, payload) in discovery.messages(for: device) {
            send(retained(topic, payload?.text ?? ""), on: connection, &memory)
        }
    }

    /// A device no longer configured: its discovery cleared (HA removes its entities), its
    /// retained availability and settings cleared.
    private func withdraw(_ known: Known, on connection: MQTTConnection, _ memory: inout Memory) {
        let name = known.device.effectiveName
        if configuration.homeAssistantDiscovery {
            for topic in discovery.allTopics(for: known.device) { send(retained(topic, ""), on: connection, &memory) }
        }
        send(retained(topics.availability(name), ""), on: connection, &memory)
        send(retained(topics.settings(name), ""), on: connection, &memory)
        memory.devices[name] = nil
        logger.info("device withdrawn from MQTT", metadata: ["device-id": "\(name)"])
    }

    /// Follows the fleet (reloads), availability and settings; called every tick.
    func tick(on connection: MQTTConnection, now: ContinuousClock.Instant = .now) {
        let services = runtime.devices
        memory.withLock { memory in
            let names = Set(services.map(\.device.effectiveName))
            for (name, known) in memory.devices where !names.contains(name) { withdraw(known, on: connection, &memory) }
            for service in services {
                let name = service.device.effectiveName
                guard let known = memory.devices[name], known.device == service.device else {
                    announce(service, on: connection, &memory, now: now)
                    continue
                }
                update(service, known, on: connection, &memory, now: now)
            }
        }
    }

    private func update(_ service: DeviceService, _ known: Known, on connection: MQTTConnection, _ memory: inout Memory, now: ContinuousClock.Instant) {
        let name = known.device.effectiveName
        let snapshot = service.state.current
        let online = isOnline(service.state, snapshot, now: now)
        if online != known.online {
            send(retained(topics.availability(name), online ? "online" : "offline"), on: connection, &memory)
            memory.devices[name]?.online = online
        }
        if snapshot.control.settings != nil && snapshot.settingsUpdates != known.settingsUpdates {
            send(retained(topics.settings(name), Payloads.settings(snapshot.control, now: now).text), on: connection, &memory)
            memory.devices[name]?.settingsUpdates = snapshot.settingsUpdates
        }
    }

    /// One good poll: its state, and its availability at once (a device back online says so with its first state).
    func publishState(_ update: DeviceUpdate, on connection: MQTTConnection) {
        guard let service = runtime.fleet.service(unit: update.unit) else { return }
        let name = service.device.effectiveName
        let now = ContinuousClock.now
        let snapshot = service.state.current
        let payload = Payloads.state(update, snapshot: snapshot, now: now).text
        memory.withLock { memory in
            // Availability first: a subscriber hears "online" before the state it qualifies.
            if let known = memory.devices[name], known.device == service.device {
                self.update(service, known, on: connection, &memory, now: now)
            }
            send(MQTTMessage(topic: topics.state(name), payload: payload, qos: .atMostOnce), on: connection, &memory)
        }
    }

    /// After every connection the broker accepts: everything retained again (a broker restarted
    /// without persistence has lost it). Runs on the connection's thread.
    func republishAll(on connection: MQTTConnection) {
        let now = ContinuousClock.now
        let services = runtime.devices
        memory.withLock { memory in
            send(retained(topics.status, "online"), on: connection, &memory)
            if configuration.homeAssistantDiscovery {
                send(retained(discovery.bridgeTopic, discovery.bridgeConfig.text), on: connection, &memory)
            }
            for service in services { announce(service, on: connection, &memory, now: now) }
        }
    }

    /// Home Assistant announced itself online (it may have started with an empty broker).
    func republishDiscovery(on connection: MQTTConnection) {
        let services = runtime.devices
        memory.withLock { memory in
            send(retained(discovery.bridgeTopic, discovery.bridgeConfig.text), on: connection, &memory)
            for service in services { sendDiscovery(of: service.device, on: connection, &memory) }
        }
    }

    // MARK: - Control

    /// A message on `<prefix>/<device>/set/<setting>`: judged here as `ControlPath.judge` judges a
    /// Modbus write (control enabled, a valid value; MQTT has no sender to check against
    /// `--control-allow`: the broker's authentication and ACL stand for it), then submitted to
    /// the device's one command path; the outcome goes to `<prefix>/<device>/control/result`.
    func command(_ message: MQTTMessage, on connection: MQTTConnection) {
        // Retained commands would be carried out again at every connection: a command is an event.
        guard !message.retain, let (name, setting) = topics.parseSet(message.topic),
              let service = runtime.devices.first(where: { $0.device.effectiveName == name })
        else { return }
        let shownPayload = Command.shown(String(decoding: message.payload.prefix(Command.maximumPayload + 8), as: UTF8.self))
        var audit: Logger.Metadata = ["client": "mqtt", "topic": "\(message.topic)", "payload": "\(shownPayload)"]
        let control = runtime.configuration.control
        let reply: @Sendable (ControlOutcome) -> Void = { [self] outcome in
            let result = Payloads.controlResult(
                setting: setting, payload: shownPayload, outcome: outcome, control: service.state.current.control, now: .now,
                unixTime: unixNow())
            memory.withLock { memory in
                send(MQTTMessage(topic: topics.controlResult(name), payload: result.text, qos: .atLeastOnce), on: connection, &memory)
            }
        }
        let refusal: ControlOutcome
        if !control.enabled {
            refusal = .refused(reason: "control is not enabled (--enable-control)", exception: .illegalFunction)
        } else {
            switch Command.change(setting: setting, payload: message.payload) {
            case .failure(let why):
                refusal = .refused(reason: why.reason, exception: .illegalDataValue)
            case .success(let change):
                audit["new"] = "\(describeChange(change))"
                service.submit(ControlRequest(change: change, audit: audit, deadline: .now + control.writeTimeout, reply: reply))
                return
            }
        }
        service.control.refuse(refusal, audit: audit, requester: "mqtt")
        reply(refusal)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func unixNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
