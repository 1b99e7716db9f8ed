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

/// The bridge, assembled: one service per device (the only code that talks to it), the device
/// states the Modbus server reads, the broadcast of readings front ends subscribe to, and the
/// Modbus server.
public struct BridgeRuntime: Sendable {
    public let configuration: BridgeConfiguration
    public let server: ModbusTCPServer
    public let devices: [DeviceService]
    public let states: [DeviceState]
    /// Every good poll of every device, for front ends.
    public let readings: ReadingBroadcast
    /// Keeps the energy state file; `nil` without `--energy-state`.
    public let energyPersistence: EnergyPersistenceService?

    /// Binds the Modbus port and reads the energy state file; nothing runs until the services run.
    public init(configuration: BridgeConfiguration, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        let states = configuration.devices.map {
            DeviceState(
                unit: $0.unit, interval: configuration.interval, staleAfter: configuration.staleAfter,
                common: BridgeIdentity.common(serialNumber: $0.effectiveSerialNumber, unit: $0.unit, version: configuration.version))
        }
        self.states = states
        // Before the Modbus port is bound: a state file that cannot be used stops the start.
        let energy = try EnergyStart.load(configuration, logger: logger)
        let readings = ReadingBroadcast()
        self.readings = readings
        devices = zip(configuration.devices, states).map { device, state in
            var logger = logger
            logger[metadataKey: "device"] = "\(device.address)"
            logger[metadataKey: "unit"] = "\(device.unit)"
            let client = SEC1000Client(address: device.address, timeouts: configuration.timeouts, minimumGap: configuration.minimumGap)
            return DeviceService(
                device: device, state: state, client: client, configuration: configuration,
                startingEnergy: energy.records[device.unit]?.counters ?? .zero, broadcast: readings, logger: logger)
        }
        energyPersistence = configuration.energy.statePath.map {
            EnergyPersistenceService(
                file: EnergyStateFile(path: $0), states: states, start: energy, interval: configuration.energy.saveInterval,
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
            bank: BridgeRegisterBank(devices: states, services: devices), logger: logger)
    }

    /// Every service to run. Graceful shutdown goes in reverse: the device services stop first
    /// (answering the changes they will not carry out), then the energy counters are saved for the
    /// last time, then the Modbus server sends the last answers and closes its connections.
    public var services: [any Service] {
        [ModbusServerService(server: server)] + (energyPersistence.map { [$0] } ?? []) + devices
    }
}

extension BridgeRuntime {
    /// The device services alone, without the Modbus server or an energy state file: the polling
    /// core, for benchmarks and front ends that serve no Modbus. Unit ids need not be distinct (they
    /// only route Modbus requests), so more than 247 devices can be built; each starts at zero energy.
    public static func pollingCore(
        configuration: BridgeConfiguration, readings: ReadingBroadcast = ReadingBroadcast(), logger: Logger
    ) -> [DeviceService] {
        configuration.devices.map { device in
            var logger = logger
            logger[metadataKey: "device"] = "\(device.address)"
            logger[metadataKey: "unit"] = "\(device.unit)"
            let state = DeviceState(
                unit: device.unit, interval: configuration.interval, staleAfter: configuration.staleAfter,
                common: BridgeIdentity.common(serialNumber: device.effectiveSerialNumber, unit: device.unit, version: configuration.version))
            let client = SEC1000Client(address: device.address, timeouts: configuration.timeouts, minimumGap: configuration.minimumGap)
            return DeviceService(
                device: device, state: state, client: client, configuration: configuration, startingEnergy: .zero,
                broadcast: readings, logger: logger)
        }
    }
}
