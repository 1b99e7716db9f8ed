import DurableFiles
import Locking
import Logging
import ModbusServer
import SEC1000Client
import UnixClock
import SEC1000Protocol
import ServiceLifecycle

/// A settings change waiting for its device, from any front end.
public struct ControlRequest: Sendable {
    public let change: SettingsChange
    /// Who asked and what, for the audit line.
    public let audit: Logger.Metadata
    /// The change must be confirmed by then (`--write-timeout` from its arrival, waiting included).
    public let deadline: ContinuousClock.Instant
    /// Whether the requester stopped waiting; a change not started by then is dropped.
    public let isAbandoned: @Sendable () -> Bool
    /// Receives the outcome, exactly once.
    public let reply: @Sendable (ControlOutcome) -> Void

    public init(
        change: SettingsChange, audit: Logger.Metadata, deadline: ContinuousClock.Instant,
        isAbandoned: @escaping @Sendable () -> Bool = { false }, reply: @escaping @Sendable (ControlOutcome) -> Void
    ) {
        self.change = change
        self.audit = audit
        self.deadline = deadline
        self.isAbandoned = isAbandoned
        self.reply = reply
    }
}

/// The only code that talks to one device.
///
/// Its loop carries out, one at a time, the polls on its schedule, the settings reads and clock
/// syncs that follow them, and the control changes waiting in its bounded line; the device's one
/// `SEC1000Client` spaces them by `--min-gap`. So "never two transactions at once" holds by
/// construction. A poll that is due goes before any waiting change: changes never starve the
/// data. Each good poll becomes one `Reading`, published (with its energy counters) to the
/// device's `DeviceState` and to the `ReadingBroadcast` that front ends subscribe to.
///
/// On graceful shutdown it starts nothing new: a change in progress finishes (bounded by its
/// deadline), waiting changes are answered `.shutDown` without touching the device.
public final class DeviceService: Service, Sendable {
    public let device: DeviceConfiguration
    public let state: DeviceState
    public let control: ControlPath
    /// The energy counters the first poll starts from, and the meter readings they account for.
    public let startingRecord: EnergyRecord
    /// The energy counters the first poll starts from.
    public var startingEnergy: EnergyCounters { startingRecord.counters }
    /// Changes that may wait for the device at once; one more is answered `.busy` (0x06).
    public static let queueCapacity = 8

    let client: SEC1000Client
    let configuration: BridgeConfiguration
    let logger: Logger
    private let broadcast: ReadingBroadcast
    private let inbox = Locked(Inbox())
    private let wakeup = Wakeup()
    private let ended = Latch()

    private struct Inbox {
        var waiting: [ControlRequest] = []
        var stopping = false
    }

    init(
        device: DeviceConfiguration, state: DeviceState, client: SEC1000Client, configuration: BridgeConfiguration,
        startingRecord: EnergyRecord, broadcast: ReadingBroadcast, logger: Logger
    ) {
        self.device = device
        self.state = state
        self.client = client
        self.configuration = configuration
        self.startingRecord = startingRecord
        self.broadcast = broadcast
        self.logger = logger
        self.control = ControlPath(unit: device.unit, client: client, state: state, configuration: configuration, logger: logger)
    }

    /// Changes waiting in line now (the one being carried out is not counted).
    public var waitingChanges: Int { inbox.withLock { $0.waiting.count } }

    /// Puts a change in the device's line; `.busy` or `.shutDown` at once when it cannot wait.
    public func submit(_ request: ControlRequest) {
        let refusal = inbox.withLock { inbox -> ControlOutcome? in
            if inbox.stopping { return .shutDown }
            guard inbox.waiting.count < Self.queueCapacity else { return .busy }
            inbox.waiting.append(request)
            return nil
        }
        if let refusal {
            control.recordUnstarted(refusal, audit: request.audit)
            request.reply(refusal)
        } else {
            wakeup.signal()
        }
    }

    /// A Modbus write to block D: judged at once, then queued; `nil` when `completion` will be called.
    func write(_ request: WriteRequest, completion: WriteCompletion) -> ModbusException? {
        switch control.judge(request) {
        case .refused(let refusal):
            return refusal.modbusException
        case .accepted(let change, let audit):
            submit(ControlRequest(
                change: change, audit: audit, deadline: .now + configuration.control.writeTimeout,
                isAbandoned: { completion.isAbandoned },
                reply: { outcome in completion(outcome.modbusException.map(WriteOutcome.exception) ?? .success) }))
            return nil
        }
    }

    /// Ends the service as graceful shutdown does (a change in progress finishes), for a device
    /// removed or replaced on reload.
    public func stop() {
        inbox.withLock { $0.stopping = true }
        wakeup.signal()
    }

    /// Returns once `run()` has ended.
    public func finished() async { await ended.wait() }

    /// The energy counters as they stand: the latest poll's, or those it started from.
    public var currentEnergy: EnergyCounters { state.current.sample?.energy ?? startingEnergy }

    /// The energy record as it stands, for the state file and for a successor on reload.
    public var currentRecord: EnergyRecord { EnergyRecord(counters: currentEnergy, applied: startingRecord.applied) }

    public func run() async throws {
        defer { ended.open() }
        await withGracefulShutdownHandler {
            await loop()
        } onGracefulShutdown: { [self] in
            inbox.withLock { $0.stopping = true }
            wakeup.signal()
        }
        // Whatever still waits was never started: its requester hears so before its connection closes.
        let left = inbox.withLock { inbox -> [ControlRequest] in
            inbox.stopping = true
            defer { inbox.waiting.removeAll() }
            return inbox.waiting
        }
        for request in left {
            control.recordUnstarted(.shutDown, audit: request.audit)
            request.reply(.shutDown)
        }
    }

    /// What the loop keeps between steps.
    private struct Schedule: Sendable {
        var nextPoll = ContinuousClock.now
        var failedPolls = 0
        var everUp = false
        var pollsSinceSettings = 0
        /// A failed settings read waits like a failed poll: a device that never answers 0x43 is
        /// not asked again after every good poll.
        var settingsFailures = 0
        var nextSettingsRead = ContinuousClock.now
        var nextClockSync = ContinuousClock.now
    }

    private func loop() async {
        var poller = PollState(configuration: configuration, gridSign: device.gridSign ?? configuration.gridSign, startingEnergy: startingEnergy)
        var schedule = Schedule()
        // When a poll is due and a change waits, they take turns: a device slower than the
        // interval still gets its changes, and changes never hold the data back by more than one.
        var changeNext = false
        while !Task.isCancelled && !inbox.withLock({ $0.stopping }) {
            let now = ContinuousClock.now
            control.logRefusalSummaries(now: now)
            // Polls and clock syncs are abandoned at once on graceful shutdown; a change is not.
            if configuration.control.syncClock, now >= schedule.nextClockSync {
                // A device that did not take the time is asked again in an hour, not every poll.
                let synced = await cancelWhenGracefulShutdown { [control] in await control.syncClock() }
                schedule.nextClockSync = now + (synced ? .seconds(86400) : .seconds(3600))
            } else if now >= schedule.nextPoll && !changeNext {
                let before = (poller, schedule)
                (poller, schedule) = await cancelWhenGracefulShutdown { [self] in
                    var (poller, schedule) = before
                    await poll(&poller, &schedule)
                    return (poller, schedule)
                }
                changeNext = true
            } else if let request = nextRequest() {
                await carryOut(request)
                changeNext = false
            } else if now >= schedule.nextPoll {
                changeNext = false
            } else {
                await wakeup.wait(until: schedule.nextPoll)
            }
        }
    }

    /// The first waiting change that its requester still waits for; the others are answered now.
    private func nextRequest() -> ControlRequest? {
        while let request = inbox.withLock({ $0.waiting.isEmpty ? nil : $0.waiting.removeFirst() }) {
            let now = ContinuousClock.now
            if request.isAbandoned() || now >= request.deadline {
                // Its requester has gone or has been answered 0x0B: the device is not touched.
                let outcome = ControlOutcome.timedOut(configuration.control.writeTimeout)
                control.recordUnstarted(outcome, audit: request.audit)
                request.reply(outcome)
                continue
            }
            return request
        }
        return nil
    }

    private func carryOut(_ request: ControlRequest) async {
        request.reply(await control.carryOut(request.change, audit: request.audit, deadline: request.deadline))
    }

    /// One poll: its reading published, or its failure recorded; then the settings when due.
    private func poll(_ poller: inout PollState, _ schedule: inout Schedule) async {
        // The interval runs from when the device sees the poll: one held back by the gap after a
        // slow settings read must not bring the next one closer.
        let started = client.nextStart
        do throws(SEC1000Error) {
            let raw = try await client.readMeasurements(policy: configuration.retry) { attempt, error in
                // Shutting down is not a failure of the device.
                guard error != .cancelled else { return }
                state.recordFailure(code: RegisterMap.errorCode(error))
                poller.logFailedAttempt(attempt, error, logger: logger)
            }
            let reading = poller.reading(of: raw)
            let energy = poller.integrate(reading, logger: logger)
            state.publish(Sample(reading: reading, energy: energy, sunSpecBase: state.sunSpecStatic))
            broadcast.publish(DeviceUpdate(unit: device.unit, reading: reading, energy: energy))
            poller.check(reading, everUp: schedule.everUp, failedPolls: schedule.failedPolls, logger: logger)
            schedule.everUp = true
            schedule.failedPolls = 0
            schedule.nextPoll = started + configuration.interval
            // The settings after the first good poll and every N good polls after it: never an
            // extra transaction for a device that is down.
            schedule.pollsSinceSettings += 1
            let due = state.current.control.settingsRead == nil || schedule.pollsSinceSettings > configuration.control.settingsEvery
            if due, ContinuousClock.now >= schedule.nextSettingsRead, !inbox.withLock({ $0.stopping }) {
                if await control.refreshSettings() {
                    schedule.settingsFailures = 0
                    schedule.pollsSinceSettings = 1
                } else {
                    schedule.settingsFailures += 1
                    schedule.nextSettingsRead = .now + backoff(after: schedule.settingsFailures)
                }
            }
        } catch .cancelled {
            return
        } catch {
            if schedule.failedPolls == 0 {
                logger.warning("device down", metadata: ["cause": "\(error)"])
            }
            schedule.failedPolls += 1
            schedule.nextPoll = started + backoff(after: schedule.failedPolls)
        }
    }

    /// The pause after `failures` failures in a row: the interval, doubled per failure, capped.
    func backoff(after failures: Int) -> Duration {
        let cap = max(configuration.interval, configuration.maxBackoff)
        var pause = configuration.interval
        for _ in 1..<max(1, failures) {
            pause = pause * 2
            if pause >= cap { return cap }
        }
        return pause
    }
}

/// What turns raw measurements into a published reading: the zero-power filter, the energy
/// integrator and the grid-sign check, with the log lines they give. Lives in the device's loop.
struct PollState: Sendable {
    let configuration: BridgeConfiguration
    /// How this device signs its meter power (a device's own setting, or the bridge's).
    let gridSign: GridSign
    var filter: ZeroPowerFilter
    var energy: EnergyIntegrator
    var signCheck: GridSignCheck
    /// Whether an implausible reading was logged at warning since the last good poll.
    var implausibleLogged = false

    init(configuration: BridgeConfiguration, gridSign: GridSign, startingEnergy: EnergyCounters) {
        self.configuration = configuration
        self.gridSign = gridSign
        filter = ZeroPowerFilter(capacity: configuration.filterCapacity, maximumAge: configuration.filterMaximumAge)
        energy = EnergyIntegrator(
            counters: startingEnergy, maximumGap: configuration.staleAfter, maximumPower: configuration.maxPlantPower)
        signCheck = GridSignCheck(sustainedFor: configuration.signCheckAfter)
    }

    mutating func logFailedAttempt(_ attempt: Int, _ error: SEC1000Error, logger: Logger) {
        if case .implausible(let reading, _) = error {
            // The first of a run at warning: a broken meter is not logged every poll.
            logger.log(level: implausibleLogged ? .debug : .warning, "implausible reading refused", metadata: [
                "attempt": "\(attempt)", "rule": "\(reading.rule.rawValue)", "detail": "\(reading.detail)",
                "values": "\(reading.measurements.rawValues)",
            ])
            implausibleLogged = true
        } else {
            logger.debug("poll attempt failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
        }
    }

    /// The one place the filter is applied and the grid sign turned.
    mutating func reading(of raw: Measurements) -> Reading {
        let now = unixTime()
        let output = filter.filter(raw.invertersPower, at: now)
        return Reading(
            raw, gridSign: gridSign, filteredInvertersPower: output.value, substituted: output.substituted,
            taken: .now, unixTime: now)
    }

    mutating func integrate(_ reading: Reading, logger: Logger) -> EnergyCounters {
        if case .refused(let step) = energy.add(reading) {
            logger.warning("energy step refused: a power beyond the plant maximum", metadata: [
                "power-w": "\(step)", "max-plant-power-w": "\(configuration.maxPlantPower)",
                "grid-power-w": "\(reading.gridPower)", "inverters-power-w": "\(reading.invertersPower)",
            ])
        }
        return energy.counters
    }

    mutating func check(_ reading: Reading, everUp: Bool, failedPolls: Int, logger: Logger) {
        implausibleLogged = false
        let power: Logger.Metadata = ["grid-power-w": "\(reading.gridPower)", "inverters-power-w": "\(reading.invertersPower)"]
        if signCheck.observe(gridPower: reading.gridPower, invertersPower: reading.invertersPower, at: reading.taken) {
            logger.warning("\(GridSignCheck.warning(gridSign: gridSign))", metadata: power)
        }
        if !everUp {
            logger.info("device up", metadata: power)
        } else if failedPolls > 0 {
            logger.notice("device recovered", metadata: ["failed-polls": "\(failedPolls)"])
        }
        if reading.substituted {
            logger.debug("inverters power 0 replaced by a cached value", metadata: ["value-w": "\(reading.invertersPower)"])
        }
    }
}

/// Wakes a task that waits for work or a deadline, whichever comes first; a signal given while
/// nobody waits is kept for the next wait.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Locked(State())

    func signal() {
        state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }?.resume()
    }

    /// Returns on a signal, at `deadline`, or on cancellation.
    func wait(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            group.addTask { await self.next() }
            await group.next()
            group.cancelAll()
        }
    }

    private func next() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }?.resume()
        }
    }
}

/// One good poll of one device, as front ends receive it.
public struct DeviceUpdate: Sendable {
    public let unit: UInt8
    public let reading: Reading
    /// The energy counters after this poll.
    public let energy: EnergyCounters
}

/// Hands every device's good polls to every subscriber (the MQTT face, the HTTP face's history).
///
/// A subscriber that falls behind loses the oldest updates, never slows a device's loop: each
/// has its own buffer of the newest `buffering` updates.
public final class ReadingBroadcast: Sendable {
    private struct State {
        var subscribers: [UInt64: AsyncStream<DeviceUpdate>.Continuation] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Locked(State())

    public init() {}

    /// A stream of every update published from now on; it ends when the subscriber stops iterating.
    public func subscribe(buffering: Int = 256) -> AsyncStream<DeviceUpdate> {
        let (stream, continuation) = AsyncStream<DeviceUpdate>.makeStream(bufferingPolicy: .bufferingNewest(max(1, buffering)))
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            state.subscribers[state.nextID] = continuation
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    func publish(_ update: DeviceUpdate) {
        for continuation in state.withLock({ Array($0.subscribers.values) }) { continuation.yield(update) }
    }
}

/// Opens once; everyone waiting, and everyone who comes later, passes.
final class Latch: Sendable {
    private struct State {
        var open = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Locked(State())

    func open() {
        state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }.forEach { $0.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
