import Locking
import Logging
import ModbusServer
import SEC1000Client
import ServiceLifecycle

/// Runs a `ModbusTCPServer`'s network thread for the lifetime of the service.
public struct ModbusServerService: Service {
    public let server: ModbusTCPServer

    public init(server: ModbusTCPServer) { self.server = server }

    public func run() async throws {
        server.start()
        // Until graceful shutdown or cancellation.
        try? await gracefulShutdown()
        server.stop()
    }
}

/// The bridge, assembled: one service per device (the only code that talks to it) in a fleet
/// that a reload changes, the broadcast of readings front ends subscribe to, and the Modbus server.
public final class BridgeRuntime: Sendable {
    /// The configuration in force (the last one applied by `reload`).
    public var configuration: BridgeConfiguration { current.withLock { $0 } }
    public let server: ModbusTCPServer
    public let fleet: DeviceFleet
    /// Every good poll of every device, for front ends.
    public let readings: ReadingBroadcast
    /// Keeps the energy state file; `nil` without `--energy-state`.
    public let energyPersistence: EnergyPersistenceService?
    private let current: Locked<BridgeConfiguration>
    private let energyStart: EnergyStart
    private let logger: Logger

    /// The device services now, in configuration order.
    public var devices: [DeviceService] { fleet.services }
    /// The device states now, in configuration order.
    public var states: [DeviceState] { fleet.services.map(\.state) }

    /// Binds the Modbus port and reads the energy state file; nothing runs until the services run.
    public init(configuration: BridgeConfiguration, logger: Logger) throws {
        try configuration.validate()
        current = Locked(configuration)
        self.logger = logger
        // Before the Modbus port is bound: a state file that cannot be used stops the start.
        let energy = try EnergyStart.load(configuration, logger: logger)
        energyStart = energy
        let readings = ReadingBroadcast()
        self.readings = readings
        let fleet = DeviceFleet(configuration.devices.map {
            Self.service(for: $0, configuration: configuration, startingRecord: energy.records[$0.unit] ?? EnergyRecord(),
                         broadcast: readings, logger: logger)
        })
        self.fleet = fleet
        energyPersistence = configuration.energy.statePath.map {
            EnergyPersistenceService(
                file: EnergyStateFile(path: $0), fleet: fleet, start: energy, interval: configuration.energy.saveInterval,
                logger: logger)
        }
        server = try ModbusTCPServer(
            configuration: ServerConfiguration(
                listen: configuration.listen, maxConnections: configuration.maxConnections,
                maxConnectionsPerAddress: configuration.maxConnectionsPerAddress,
                idleTimeout: configuration.idleTimeout,
                identification: BridgeIdentity.deviceIdentification(version: configuration.version),
                reservedDescriptors: configuration.runtimeDescriptorReserve,
                // A write not confirmed in time is answered 0x0B by the server, waiting in line included.
                writeTimeout: configuration.control.writeTimeout),
            bank: BridgeRegisterBank(fleet: fleet), logger: logger)
    }

    static func service(
        for device: DeviceConfiguration, configuration: BridgeConfiguration, startingRecord: EnergyRecord,
        carrying snapshot: DeviceSnapshot? = nil, broadcast: ReadingBroadcast, logger: Logger
    ) -> DeviceService {
        var logger = logger
        logger[metadataKey: "device"] = "\(device.address)"
        logger[metadataKey: "unit"] = "\(device.unit)"
        let state = DeviceState(
            unit: device.unit, interval: configuration.interval, staleAfter: configuration.staleAfter,
            common: BridgeIdentity.common(serialNumber: device.effectiveSerialNumber, unit: device.unit, version: configuration.version),
            carrying: snapshot, energy: startingRecord.counters, meterMode: device.meterMode ?? configuration.control.meterMode)
        let client = SEC1000Client(address: device.address, timeouts: configuration.timeouts, minimumGap: configuration.minimumGap)
        return DeviceService(
            device: device, state: state, client: client, configuration: configuration, startingRecord: startingRecord,
            broadcast: broadcast, logger: logger)
    }

    /// Applies a new configuration without closing a Modbus connection: devices added, removed
    /// or changed, timing and control settings changed. A device whose own settings and the
    /// settings that drive it are unchanged runs on untouched; a changed one is replaced, keeping
    /// its energy counters and its last data. What only a restart can change is named in the
    /// report and left as it was.
    public func reload(_ new: BridgeConfiguration) throws(ConfigurationError) -> ReloadReport {
        try new.validate()
        let old = configuration
        var applied = new
        let needsRestart = ReloadReport.restartOnly(old: old, new: new)
        // What needs a restart stays as it runs.
        applied.listen = old.listen
        applied.maxConnections = old.maxConnections
        applied.maxConnectionsPerAddress = old.maxConnectionsPerAddress
        applied.idleTimeout = old.idleTimeout
        applied.energy.statePath = old.energy.statePath
        applied.energy.saveInterval = old.energy.saveInterval
        applied.control.writeTimeout = old.control.writeTimeout
        let drivesDevices = !old.drivesDevicesLike(applied)
        var report = ReloadReport(needsRestart: needsRestart)
        var services: [DeviceService] = []
        var starting: [(service: DeviceService, after: DeviceService?)] = []
        var stopping: [DeviceService] = []
        let running = Dictionary(fleet.services.map { ($0.device.unit, $0) }, uniquingKeysWith: { first, _ in first })
        let retired = fleet.retiredEnergy
        for device in applied.devices {
            if let previous = running[device.unit] {
                // A meter reading given anew (a value not applied before) sets the counters.
                let energy = EnergyStart.aligned(previous.currentRecord, unit: device.unit, configuration: applied, logger: logger)
                if previous.device == device && !drivesDevices && energy.changed.isEmpty {
                    services.append(previous)
                    continue
                }
                let replacement = Self.service(
                    for: device, configuration: applied, startingRecord: energy.record, carrying: previous.state.current,
                    broadcast: readings, logger: logger)
                services.append(replacement)
                starting.append((replacement, previous))
                stopping.append(previous)
                report.changed.append(device.unit)
            } else {
                let stored = retired[device.unit] ?? energyStart.others[device.unit]
                let energy = EnergyStart.aligned(stored, unit: device.unit, configuration: applied, logger: logger).record
                let service = Self.service(for: device, configuration: applied, startingRecord: energy, broadcast: readings, logger: logger)
                services.append(service)
                starting.append((service, nil))
                report.added.append(device.unit)
            }
        }
        for (unit, service) in running where !applied.devices.contains(where: { $0.unit == unit }) {
            stopping.append(service)
            report.removed.append(unit)
        }
        current.withLock { $0 = applied }
        fleet.replace(with: services, starting: starting, stopping: stopping)
        return report
    }

    /// Every service to run. Graceful shutdown goes in reverse: the device services stop first
    /// (answering the changes they will not carry out), then the energy counters are saved for the
    /// last time, then the Modbus server sends the last answers and closes its connections.
    public var services: [any Service] {
        [ModbusServerService(server: server)] + (energyPersistence.map { [$0] } ?? []) + [fleet]
    }
}

/// What a reload changed, and what it could not.
public struct ReloadReport: Sendable, Equatable {
    public var added: [UInt8] = []
    public var removed: [UInt8] = []
    public var changed: [UInt8] = []
    /// Options whose new value takes effect only after a restart.
    public var needsRestart: [String]

    static func restartOnly(old: BridgeConfiguration, new: BridgeConfiguration) -> [String] {
        var names: [String] = []
        if old.listen != new.listen { names.append("listen") }
        if old.maxConnections != new.maxConnections { names.append("max-connections") }
        if old.maxConnectionsPerAddress != new.maxConnectionsPerAddress { names.append("max-connections-per-address") }
        if old.idleTimeout != new.idleTimeout { names.append("idle-timeout") }
        if old.energy.statePath != new.energy.statePath { names.append("energy-state") }
        if old.energy.saveInterval != new.energy.saveInterval { names.append("energy-save-interval") }
        if old.control.writeTimeout != new.control.writeTimeout { names.append("write-timeout") }
        return names
    }
}

extension BridgeConfiguration {
    /// Whether the settings every device service runs with are the same in both.
    func drivesDevicesLike(_ other: BridgeConfiguration) -> Bool {
        interval == other.interval && staleAfter == other.staleAfter && gridSign == other.gridSign
            && timeouts == other.timeouts && retry == other.retry && minimumGap == other.minimumGap
            && maxBackoff == other.maxBackoff && filterCapacity == other.filterCapacity
            && filterMaximumAge == other.filterMaximumAge && control == other.control
            && maxPlantPower == other.maxPlantPower && version == other.version && signCheckAfter == other.signCheckAfter
    }
}

extension BridgeRuntime {
    /// The device services alone, without the Modbus server or an energy state file: the polling
    /// core, for benchmarks and front ends that serve no Modbus. Unit ids need not be distinct (they
    /// only route Modbus requests), so more than 247 devices can be built; each starts at zero energy.
    public static func pollingCore(
        configuration: BridgeConfiguration, readings: ReadingBroadcast = ReadingBroadcast(), logger: Logger
    ) -> [DeviceService] {
        configuration.devices.map {
            service(for: $0, configuration: configuration, startingRecord: EnergyRecord(), broadcast: readings, logger: logger)
        }
    }
}
