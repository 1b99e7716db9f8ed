import Logging
import ModbusServer
import SEC1000Client
import SEC1000Simulator
import ServiceLifecycle

/// Runs a `ModbusTCPServer`'s network thread for the lifetime of the service.
public struct ModbusServerService: Service {
    public let server: ModbusTCPServer

    public init(server: ModbusTCPServer) { self.server = server }

    public func run() async throws {
        server.start()
        await waitForShutdown()
        server.stop()
    }
}

/// Runs the built-in simulated device for `bridge --simulate`.
public struct SimulatorService: Service {
    public let device: SimulatedDevice

    public init(device: SimulatedDevice) { self.device = device }

    public func run() async throws {
        device.start()
        await waitForShutdown()
        device.stop()
    }
}

/// Suspends until graceful shutdown or cancellation.
func waitForShutdown() async {
    let (stream, continuation) = AsyncStream<Void>.makeStream()
    await withGracefulShutdownHandler {
        await withTaskCancellationHandler {
            for await _ in stream { break }
        } onCancel: {
            continuation.finish()
        }
    } onGracefulShutdown: {
        continuation.finish()
    }
}

/// The bridge, assembled: one poller per device, the device states, and the Modbus server.
public struct BridgeRuntime: Sendable {
    /// What the runtime was made from (device addresses and serial numbers, for the HTTP face).
    public let configuration: BridgeConfiguration
    public let server: ModbusTCPServer
    public let pollers: [Poller]
    public let states: [DeviceState]
    public let controllers: [DeviceController]
    public let simulator: SimulatedDevice?
    /// Keeps the energy state file; `nil` without `--energy-state`.
    public let energyPersistence: EnergyPersistenceService?

    /// Binds the Modbus port and reads the energy state file; nothing runs until the services run.
    public init(configuration: BridgeConfiguration, simulator: SimulatedDevice? = nil, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        let states = configuration.devices.map {
            DeviceState(
                unit: $0.unit, interval: configuration.interval, staleAfter: configuration.staleAfter,
                common: BridgeIdentity.common(serialNumber: $0.effectiveSerialNumber, unit: $0.unit, version: configuration.version))
        }
        self.states = states
        controllers = zip(configuration.devices, states).map { device, state in
            // One client per device, shared by its poller and its controller: the client
            // serializes and spaces every transaction with that device.
            var logger = logger
            logger[metadataKey: "device"] = "\(device.address)"
            logger[metadataKey: "unit"] = "\(device.unit)"
            let client = SEC1000Client(
                address: device.address, timeouts: configuration.timeouts, minimumGap: configuration.minimumGap)
            return DeviceController(unit: device.unit, client: client, state: state, configuration: configuration, logger: logger)
        }
        // Before the Modbus port is bound: a state file that cannot be used stops the start.
        let energy = try EnergyStart.load(configuration, logger: logger)
        pollers = zip(configuration.devices, controllers).map { device, controller in
            Poller(device: device, controller: controller, startingEnergy: energy.records[device.unit]?.counters ?? .zero)
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
                reservedDescriptors: configuration.runtimeDescriptorReserve),
            bank: BridgeRegisterBank(devices: states, controllers: controllers), logger: logger)
        self.simulator = simulator
    }

    /// Every service to run, simulator first so the first poll finds it. Graceful shutdown goes in
    /// reverse: the pollers stop before the energy counters are saved for the last time.
    public var services: [any Service] {
        (simulator.map { [SimulatorService(device: $0)] } ?? []) + [ModbusServerService(server: server)]
            + (energyPersistence.map { [$0] } ?? []) + pollers
    }
}
