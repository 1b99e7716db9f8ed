import Logging
import SEC1000Client
import SEC1000Protocol
import ServiceLifecycle

/// Polls one SEC1000 on its own schedule and publishes each good poll to its `DeviceState`.
///
/// Every attempt, good or failed, updates the status block. A device that keeps failing is polled
/// less often (doubling the pause up to `maxBackoff`) so a device that is down is not hammered.
public struct Poller: Service {
    public let device: DeviceConfiguration
    public let state: DeviceState
    private let controller: DeviceController
    private var client: SEC1000Client { controller.client }
    private var configuration: BridgeConfiguration { controller.configuration }
    private var logger: Logger { controller.logger }
    /// The energy counters the first poll starts from.
    public let startingEnergy: EnergyCounters

    init(device: DeviceConfiguration, controller: DeviceController, startingEnergy: EnergyCounters = .zero) {
        self.device = device
        self.controller = controller
        self.state = controller.state
        self.startingEnergy = startingEnergy
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var filter = ZeroPowerFilter(capacity: configuration.filterCapacity, maximumAge: configuration.filterMaximumAge)
            var energy = EnergyIntegrator(
                counters: startingEnergy, maximumGap: configuration.staleAfter, maximumPower: configuration.maxPlantPower)
            var signCheck = GridSignCheck(sustainedFor: configuration.signCheckAfter)
            var failedCycles = 0
            // Whether an implausible reading was logged at warning since the last good poll.
            var implausibleLogged = false
            var everUp = false
            var pollsSinceSettings = 0
            var nextClockSync = ContinuousClock.now
            while !Task.isCancelled {
                let started = ContinuousClock.now
                controller.logRefusalSummaries()
                // The clock at start and once a day.
                if configuration.control.syncClock, started >= nextClockSync {
                    // A device that did not take the time is asked again in an hour, not every poll.
                    nextClockSync = started + (await controller.syncClock() ? .seconds(86400) : .seconds(3600))
                }
                do throws(SEC1000Error) {
                    let raw = try await client.readMeasurements(policy: configuration.retry) { attempt, error in
                        // Shutting down is not a failure of the device.
                        guard error != .cancelled else { return }
                        state.recordFailure(code: RegisterMap.errorCode(error))
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
                    let output = filter.filter(raw.invertersPower, at: unixTime())
                    var filtered = raw
                    filtered.invertersPower = output.value
                    let values = RegisterMap.blockAValues(filtered, gridSign: (device.gridSign ?? configuration.gridSign))
                    let taken = ContinuousClock.now
                    if case .refused(let power) = energy.add(gridPower: values[9], productionPower: values[10], at: taken) {
                        logger.warning("energy step refused: a power beyond the plant maximum", metadata: [
                            "power-w": "\(power)", "max-plant-power-w": "\(configuration.maxPlantPower)",
                            "grid-power-w": "\(values[9])", "inverters-power-w": "\(values[10])",
                        ])
                    }
                    state.publish(Sample(
                        values: values, measurements: filtered, substituted: output.substituted,
                        energy: energy.counters, sunSpecBase: state.sunSpecStatic, taken: taken,
                        unixTime: UInt32(clamping: Int64(unixTime()))))
                    if signCheck.observe(gridPower: values[9], invertersPower: values[10], at: taken) {
                        logger.warning("\(GridSignCheck.warning(gridSign: (device.gridSign ?? configuration.gridSign)))", metadata: [
                            "grid-power-w": "\(values[9])", "inverters-power-w": "\(values[10])",
                        ])
                    }
                    if !everUp {
                        logger.info("device up", metadata: ["grid-power-w": "\(values[9])", "inverters-power-w": "\(values[10])"])
                    } else if failedCycles > 0 {
                        logger.notice("device recovered", metadata: ["failed-polls": "\(failedCycles)"])
                    }
                    if output.substituted {
                        logger.debug("inverters power 0 replaced by a cached value", metadata: ["value-w": "\(output.value)"])
                    }
                    everUp = true
                    failedCycles = 0
                    implausibleLogged = false
                    // The settings after the first good poll and every N good polls after it:
                    // never an extra transaction for a device that is down.
                    if state.current.control.settingsRead == nil || pollsSinceSettings >= configuration.control.settingsEvery {
                        await controller.refreshSettings()
                        pollsSinceSettings = 0
                    }
                    pollsSinceSettings += 1
                } catch .cancelled {
                    return
                } catch {
                    if failedCycles == 0 {
                        logger.warning("device down", metadata: ["cause": "\(error)"])
                    }
                    failedCycles += 1
                }
                let pause = failedCycles == 0 ? configuration.interval : backoff(after: failedCycles)
                do {
                    try await Task.sleep(until: started + pause, clock: .continuous)
                } catch {
                    return
                }
            }
        }
    }

    /// The pause after `failures` failed polls in a row: the interval, doubled per failure, capped.
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
