import Logging
import SEC1000Client
import ServiceLifecycle
import Sockets

/// What the bridge starts its energy counters from, decided once at startup.
public struct EnergyStart: Sendable {
    /// The record each configured unit starts with.
    public let records: [UInt8: EnergyRecord]
    /// Records in the file for units not configured now: kept, so a device left out for a while
    /// keeps its counters.
    public let others: [UInt8: EnergyRecord]

    /// Loads the state file (if any), reports a corrupt one and sets it aside, and applies the
    /// command line's meter readings.
    public static func load(_ configuration: BridgeConfiguration, logger: Logger) -> EnergyStart {
        var stored: [UInt8: EnergyRecord] = [:]
        if let path = configuration.energy.statePath {
            let file = EnergyStateFile(path: path)
            do {
                if let loaded = try file.load() {
                    stored = loaded
                } else {
                    logger.notice("no energy state file yet: counters start from --energy-*-wh or 0", metadata: ["path": "\(path)"])
                }
            } catch {
                let aside = file.setAsideCorrupt()
                logger.error("energy state file not trusted: counters start from --energy-*-wh or 0", metadata: [
                    "path": "\(path)", "reason": "\(error)", "kept-as": "\(aside ?? "(could not be moved)")",
                ])
            }
        } else {
            logger.notice("energy counters are kept in memory only (no --energy-state): they restart at every start")
        }
        var records: [UInt8: EnergyRecord] = [:]
        for device in configuration.devices {
            let alignments = configuration.energy.alignments[device.unit] ?? [:]
            let (record, changed) = EnergyRecord.starting(stored: stored[device.unit], alignments: alignments)
            for counter in changed {
                logger.notice("energy counter set from the command line", metadata: [
                    "unit": "\(device.unit)", "counter": "\(counter.rawValue)", "wh": "\(alignments[counter] ?? 0)",
                    "was-wh": "\(stored[device.unit].map { "\($0.counters[counter])" } ?? "none")",
                ])
            }
            records[device.unit] = record
        }
        return EnergyStart(records: records, others: stored.filter { records[$0.key] == nil })
    }
}

/// Keeps the energy state file current: written at start (which also replaces a corrupt file),
/// every `saveInterval` when a counter moved, and at shutdown. Listed before the pollers, so a
/// graceful shutdown stops them first and the last save holds their last polls.
public struct EnergyPersistenceService: Service {
    public let file: EnergyStateFile
    private let states: [DeviceState]
    private let start: EnergyStart
    private let interval: Duration
    private let logger: Logger

    public init(file: EnergyStateFile, states: [DeviceState], start: EnergyStart, interval: Duration, logger: Logger) {
        self.file = file
        self.states = states
        self.start = start
        self.interval = interval
        self.logger = logger
    }

    /// Every record as it stands: the latest poll's counters, or the starting ones before any poll.
    public func currentRecords() -> [UInt8: EnergyRecord] {
        var records = start.others
        for state in states {
            var record = start.records[state.unit] ?? EnergyRecord()
            if let energy = state.current.sample?.energy { record.counters = energy }
            records[state.unit] = record
        }
        return records
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var saved: [UInt8: EnergyRecord]?
            var failing = false
            func save() async {
                let records = currentRecords()
                guard records != saved else { return }
                if let error = await saveOffPool(records) {
                    if !failing { logger.error("cannot save the energy counters", metadata: ["error": "\(error)"]) }
                    failing = true
                } else {
                    if failing { logger.notice("energy counters saved again", metadata: ["path": "\(file.path)"]) }
                    failing = false
                    saved = records
                }
            }
            await save()
            while true {
                do { try await Task.sleep(for: interval) } catch { break }
                await save()
            }
            // Shutdown: the pollers have stopped, so this holds their last polls.
            await save()
        }
    }

    /// Writes on a thread of its own: fsync can take a while on an SD card, and the cooperative
    /// pool is only as wide as the core count.
    private func saveOffPool(_ records: [UInt8: EnergyRecord]) async -> CacheFileError? {
        let file = file
        return await withCheckedContinuation { (continuation: CheckedContinuation<CacheFileError?, Never>) in
            BlockingThread {
                do throws(CacheFileError) {
                    try file.save(records)
                    continuation.resume(returning: nil)
                } catch {
                    continuation.resume(returning: error)
                }
            }.detach()
        }
    }
}
