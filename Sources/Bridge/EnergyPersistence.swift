import DurableFiles
import Logging
import ServiceLifecycle
import Sockets
import Threading

/// Why the bridge cannot start with the energy state file it was given. Nothing has been started,
/// and the file has not been changed.
public enum EnergyStateStartupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process (another bridge) holds the file's lock.
    case inUse(path: String, lockPath: String)
    /// The file (or its lock file) cannot be used: a directory, no permission, an I/O error, ...
    case unusable(path: String, FileError)
    /// The file is there and readable, but is not an energy state file.
    case notAStateFile(path: String)
    /// The file's contents are damaged, and moving it aside failed.
    case cannotSetAside(path: String, reason: EnergyStateError, FileError)

    public var description: String {
        switch self {
        case .inUse(let path, let lockPath):
            "the energy state file \(path) is in use by another sec1000 bridge (it holds the lock on \(lockPath)): "
                + "give each bridge its own --energy-state file, or stop the other bridge first"
        case .unusable(let path, let error):
            "the energy state file \(path) cannot be used: \(error). Nothing was started and the file was not changed"
        case .notAStateFile(let path):
            "\(path) is not a sec1000 energy state file (it does not start with 'sec1000-energy'): "
                + "give --energy-state the path of a state file, or of a file that does not exist yet. "
                + "Nothing was started and the file was not changed"
        case .cannotSetAside(let path, let reason, let error):
            "the energy state file \(path) is damaged (\(reason)), and it could not be set aside: \(error). "
                + "Move it away by hand to start the counters again. Nothing was started"
        }
    }
}

/// What the bridge starts its energy counters from, decided once at startup.
public struct EnergyStart: Sendable {
    /// The record each configured unit starts with.
    public let records: [UInt8: EnergyRecord]
    /// Records in the file for units not configured now: kept, so a device left out for a while
    /// keeps its counters.
    public let others: [UInt8: EnergyRecord]
    /// The state file's lock, held while the bridge may write the file; `nil` without a file.
    public let lock: FileLock?

    /// Takes the state file's lock, loads the file (if any), sets aside one whose contents are
    /// damaged (and reports it), and applies the command line's meter readings.
    ///
    /// Throws, before anything is created or changed, when the path is not a regular file, and
    /// without changing the file when another bridge holds it, when it cannot be read, or when it
    /// is not a state file: none of these may silently restart the counters at 0.
    public static func load(
        _ configuration: BridgeConfiguration, logger: Logger
    ) throws(EnergyStateStartupError) -> EnergyStart {
        var stored: [UInt8: EnergyRecord] = [:]
        var lock: FileLock?
        if let path = configuration.energy.statePath {
            let file = EnergyStateFile(path: path)
            // Checked before the lock file is created beside it.
            do { try requireRegularFileIfPresent(path) } catch { throw .unusable(path: path, error) }
            do {
                lock = try file.lock()
            } catch {
                if error.reason == .heldByAnotherProcess { throw .inUse(path: path, lockPath: file.lockPath) }
                throw .unusable(path: path, error)
            }
            do {
                if let loaded = try file.load() {
                    stored = loaded
                } else {
                    logger.notice("no energy state file yet: counters start from --energy-*-wh or 0", metadata: ["path": "\(path)"])
                }
            } catch {
                switch error {
                case .cannotRead(let fileError): throw .unusable(path: path, fileError)
                case .notAStateFile: throw .notAStateFile(path: path)
                default: break
                }
                let aside: String
                do { aside = try file.setAsideCorrupt() } catch let setAsideError {
                    throw .cannotSetAside(path: path, reason: error, setAsideError)
                }
                logger.error("energy state file not trusted: counters start from --energy-*-wh or 0", metadata: [
                    "path": "\(path)", "reason": "\(error)", "kept-as": "\(aside)",
                ])
            }
        } else {
            logger.notice("energy counters are kept in memory only (no --energy-state): they restart at every start")
        }
        var records: [UInt8: EnergyRecord] = [:]
        for device in configuration.devices {
            records[device.unit] = aligned(stored[device.unit], unit: device.unit, configuration: configuration, logger: logger).record
        }
        return EnergyStart(records: records, others: stored.filter { records[$0.key] == nil }, lock: lock)
    }

    /// `record` with the configured meter readings of `unit` that differ from those last applied
    /// set as its counters (see `EnergyRecord.starting`), each change logged; at start and on reload.
    static func aligned(
        _ record: EnergyRecord?, unit: UInt8, configuration: BridgeConfiguration, logger: Logger
    ) -> (record: EnergyRecord, changed: [EnergyCounter]) {
        let alignments = configuration.energy.alignments[unit] ?? [:]
        let result = EnergyRecord.starting(stored: record, alignments: alignments)
        for counter in result.changed {
            logger.notice("energy counter set from the configuration", metadata: [
                "unit": "\(unit)", "counter": "\(counter.rawValue)", "wh": "\(alignments[counter] ?? 0)",
                "was-wh": "\(record.map { "\($0.counters[counter])" } ?? "none")",
            ])
        }
        return result
    }
}

/// Keeps the energy state file current: written at start (which also replaces a corrupt file),
/// every `saveInterval` when a counter moved, and at shutdown. Listed before the pollers, so a
/// graceful shutdown stops them first and the last save holds their last polls. The state file's
/// lock (in `start`) is held until the last save is done.
public struct EnergyPersistenceService: Service {
    public let file: EnergyStateFile
    private let fleet: DeviceFleet
    private let start: EnergyStart
    private let interval: Duration
    private let logger: Logger

    public init(file: EnergyStateFile, fleet: DeviceFleet, start: EnergyStart, interval: Duration, logger: Logger) {
        self.file = file
        self.fleet = fleet
        self.start = start
        self.interval = interval
        self.logger = logger
    }

    /// Every record as it stands: the latest poll's counters, or the starting ones before any poll.
    public func currentRecords() -> [UInt8: EnergyRecord] {
        var records = start.others
        for (unit, record) in fleet.retiredEnergy { records[unit] = record }
        for service in fleet.services { records[service.device.unit] = service.currentRecord }
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
            start.lock?.release()
        }
    }

    /// Writes on a thread of its own: fsync can take a while on an SD card, and the cooperative
    /// pool is only as wide as the core count.
    private func saveOffPool(_ records: [UInt8: EnergyRecord]) async -> FileError? {
        let file = file
        return await withCheckedContinuation { (continuation: CheckedContinuation<FileError?, Never>) in
            BlockingThread.detached {
                do throws(FileError) {
                    try file.save(records)
                    continuation.resume(returning: nil)
                } catch {
                    continuation.resume(returning: error)
                }
            }
        }
    }
}
