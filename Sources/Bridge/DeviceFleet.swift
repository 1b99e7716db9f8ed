import Locking
import Logging
import SEC1000Client
import ServiceLifecycle

/// The running bridge's device services: one per configured device, started, stopped and
/// replaced as the configuration changes (SIGHUP), while the Modbus server goes on serving.
///
/// The register bank, the energy file and the front ends look devices up here, so a device added
/// on reload is served at once and a removed one stops answering (0x0A) at once. A replaced
/// device's new service starts only when the old one has ended: never two transactions at once.
public final class DeviceFleet: Service, Sendable {
    private struct Members {
        var services: [DeviceService]
        var byUnit: [UInt8: DeviceService]
        /// What the Modbus server serves: the services' states, in configuration order.
        var states: [DeviceState]
        var statesByUnit: [UInt8: DeviceState]
        /// Energy records of devices removed on reload, kept for the state file and for their return.
        var retired: [UInt8: EnergyRecord] = [:]
    }

    private let members: Locked<Members>
    private let starts: AsyncStream<(service: DeviceService, after: DeviceService?)>.Continuation
    private let startStream: AsyncStream<(service: DeviceService, after: DeviceService?)>

    init(_ services: [DeviceService]) {
        members = Locked(Members(
            services: services, byUnit: Self.index(services), states: services.map(\.state),
            statesByUnit: Self.index(services.map(\.state))))
        (startStream, starts) = AsyncStream.makeStream()
    }

    /// States with no service behind them, for judging requests without devices (fuzzing).
    init(states: [DeviceState]) {
        members = Locked(Members(services: [], byUnit: [:], states: states, statesByUnit: Self.index(states)))
        (startStream, starts) = AsyncStream.makeStream()
    }

    private static func index(_ services: [DeviceService]) -> [UInt8: DeviceService] {
        Dictionary(services.map { ($0.device.unit, $0) }, uniquingKeysWith: { first, _ in first })
    }

    private static func index(_ states: [DeviceState]) -> [UInt8: DeviceState] {
        Dictionary(states.map { ($0.unit, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The state served on `unit`: units 0 and 255 reach the first device unless configured.
    public func state(unit: UInt8) -> DeviceState? {
        members.withLock { $0.statesByUnit[unit] ?? (unit == 0 || unit == 255 ? $0.states.first : nil) }
    }

    /// The device services now, in configuration order.
    public var services: [DeviceService] { members.withLock { $0.services } }

    /// The service on `unit`, if one is configured now.
    public func service(unit: UInt8) -> DeviceService? { members.withLock { $0.byUnit[unit] } }

    /// Energy records of devices no longer configured, by unit.
    public var retiredEnergy: [UInt8: EnergyRecord] { members.withLock { $0.retired } }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for service in services {
                group.addTask { try? await service.run() }
            }
            // Services added on reload join the group; graceful shutdown reaches every one of them
            // (they run in the group's child tasks), and the group waits for all to finish.
            for await (service, after) in startStream.cancelOnGracefulShutdown() {
                group.addTask {
                    await after?.finished()
                    try? await service.run()
                }
            }
            for service in services { service.stop() }
            await group.waitForAll()
        }
    }

    /// Puts `services` in place of the fleet's: `stopping` end (finishing a change in progress),
    /// `starting` begin, each after the predecessor it replaces has ended; the others run on.
    func replace(
        with services: [DeviceService], starting: [(service: DeviceService, after: DeviceService?)], stopping: [DeviceService]
    ) {
        members.withLock { members in
            for service in stopping where !services.contains(where: { $0.device.unit == service.device.unit }) {
                members.retired[service.device.unit] = service.currentRecord
            }
            for service in services { members.retired[service.device.unit] = nil }
            members.services = services
            members.byUnit = Self.index(services)
            members.states = services.map(\.state)
            members.statesByUnit = Self.index(members.states)
        }
        for service in stopping { service.stop() }
        for (service, after) in starting { starts.yield((service, after)) }
    }
}
