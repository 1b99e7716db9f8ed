#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Locking
import Logging
import ModbusServer
import SEC1000Client
import SEC1000Protocol
import Sockets

/// Changes one device's export settings on behalf of Modbus clients, and keeps its settings and
/// clock in step.
///
/// Every transaction goes through the device's one `SEC1000Client`, so writes are serialized with
/// the polls; writes are also serialized with each other, so a read-back always belongs to its own
/// write. Every write that is carried out is written to the log as an audit line; refused writes
/// are logged once per client and reason, then summarized with a count (`refusalLog`).
public struct DeviceController: Sendable {
    public let unit: UInt8
    let client: SEC1000Client
    let state: DeviceState
    let configuration: BridgeConfiguration
    let logger: Logger
    private let operations = OperationQueue()
    /// Refused writes are a client's mistake or an attack: a flood of them must not flood the log.
    private let refusalLog = Locked(LogRateLimiter<RefusalKey>())

    struct RefusalKey: Hashable, Sendable {
        let host: String
        let reason: String
    }

    init(unit: UInt8, client: SEC1000Client, state: DeviceState, configuration: BridgeConfiguration, logger: Logger) {
        self.unit = unit
        self.client = client
        self.state = state
        self.configuration = configuration
        self.logger = logger
    }

    /// Judges a Modbus write; `nil` when it was started and `completion` will be called.
    func write(_ request: WriteRequest, completion: WriteCompletion) -> ModbusException? {
        let control = configuration.control
        let registers = ControlWrite.registers(of: request)
        // The logger already names the device and its unit; "unit-id" is what the client addressed (0 and 255 reach the first device).
        var audit: Logger.Metadata = [
            "client": "\(request.client)", "unit-id": "\(request.unit)", "registers": "\(registers)",
        ]
        guard control.enabled else {
            audit["outcome"] = "refused: control is not enabled (--enable-control)"
            logRefusal(audit, client: request.client)
            return .illegalFunction
        }
        guard control.allow.contains(where: { $0.contains(host: request.client.host) }) else {
            audit["outcome"] = "refused: client not in --control-allow"
            logRefusal(audit, client: request.client)
            return .illegalFunction
        }
        let change: SettingsChange
        switch ControlWrite.change(from: request) {
        case .failure(let exception):
            audit["outcome"] = "refused: \(exception)"
            logRefusal(audit, client: request.client)
            if exception == .illegalDataValue { state.record(writeResult: .refusedByValidation) }
            return exception
        case .success(let parsed):
            change = parsed
        }
        let cached = state.current.control.settings
        audit["new"] = "\(describeChange(change))"
        Task {
            let outcome = await operations.run { await carryOut(change) }
            switch outcome {
            case .success(let settings):
                audit["old"] = "\(describeSettings(settings.before))"
                audit["outcome"] = "confirmed"
                audit["read-back"] = "\(describeSettings(settings.after))"
                logger.notice("control write", metadata: audit)
                completion(.success)
            case .failure(let error):
                audit["old"] = "\(cached.map(describeSettings) ?? "not read yet")"
                audit["outcome"] = "\(error)"
                logger.notice("control write failed", metadata: audit)
                completion(.exception(exception(for: error)))
            }
        }
        return nil
    }

    /// Logs a refused write the first time its client and reason come up in a window; counts the rest.
    private func logRefusal(_ audit: Logger.Metadata, client: SocketAddress, now: ContinuousClock.Instant = .now) {
        let key = RefusalKey(host: client.host, reason: audit["outcome"].map { "\($0)" } ?? "")
        let (verdict, summaries) = refusalLog.withLock { limiter in
            (limiter.record(key, now: now), limiter.expire(now: now))
        }
        logSummaries(summaries)
        if verdict == .log { logger.notice("control write refused", metadata: audit) }
    }

    /// Writes the counts of refused writes whose window has ended; the poller calls it every cycle,
    /// so a flood that stops still gets its summary.
    public func logRefusalSummaries(now: ContinuousClock.Instant = .now) {
        logSummaries(refusalLog.withLock { $0.expire(now: now) })
    }

    private func logSummaries(_ summaries: [LogRateLimiter<RefusalKey>.Summary]) {
        for summary in summaries {
            let from = summary.key.map { "from \($0.host)" } ?? "from other addresses"
            var metadata: Logger.Metadata = ["count": "\(summary.count)"]
            if let reason = summary.key?.reason { metadata["outcome"] = "\(reason)" }
            logger.notice(
                "\(summary.count) more refused writes \(from) in the last \(summary.window.components.seconds) s",
                metadata: metadata)
        }
    }

    /// Carries `change` out within the write timeout and records the result in register 309.
    func carryOut(_ change: SettingsChange) async -> Result<(before: ExportSettings, after: ExportSettings), ControlError> {
        let known = state.current.control.meterMode
        let result = await withDeadline(configuration.control.writeTimeout) {
            () async -> Result<(before: ExportSettings, after: ExportSettings), ControlError> in
            do throws(ControlError) {
                return .success(try await client.apply(
                    change, knownMeterMode: known, limits: configuration.control.limits, policy: configuration.retry))
            } catch {
                return .failure(error)
            }
        } ?? .failure(.timedOut(configuration.control.writeTimeout))
        switch result {
        case .success(let settings):
            state.publish(settings: settings.after, meterMode: change.meterMode ?? known)
            state.record(writeResult: .confirmed)
        case .failure(.invalid):
            state.record(writeResult: .refusedByValidation)
        case .failure(.notConfirmed(_, let actual)):
            state.publish(settings: actual)
            state.record(writeResult: .notConfirmed)
        case .failure(.unreachable), .failure(.timedOut):
            state.record(writeResult: .unreachable)
        }
        return result
    }

    /// Reads the settings (0x43) once and publishes them; failures leave the age growing.
    func refreshSettings() async {
        await operations.run {
            do {
                state.publish(settings: try await client.readExportSettings(policy: .once))
            } catch {
                logger.debug("settings read failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Sets the device clock to the host's local time; `true` when the device answered.
    @discardableResult
    func syncClock() async -> Bool {
        await operations.run {
            var now = time_t(unixTime())
            var local = tm()
            localtime_r(&now, &local)
            let time = DeviceTime(
                year: Int(local.tm_year) + 1900, month: Int(local.tm_mon) + 1, day: Int(local.tm_mday),
                hour: Int(local.tm_hour), minute: Int(local.tm_min), second: Int(local.tm_sec))
            do {
                _ = try await client.send(.setClock(time), policy: configuration.retry)
                state.recordClockSync(unixTime: UInt32(clamping: Int64(now)))
                logger.info("device clock set", metadata: ["local-time": "\(time)"])
                return true
            } catch {
                logger.warning("device clock not set", metadata: ["error": "\(error)"])
                return false
            }
        }
    }

    private func exception(for error: ControlError) -> ModbusException {
        switch error {
        case .invalid: .illegalDataValue
        case .notConfirmed: .serverDeviceFailure
        case .unreachable, .timedOut: .gatewayTargetFailedToRespond
        }
    }
}

/// Runs `operation`, giving up (and cancelling it) after `timeout`; `nil` on timeout.
func withDeadline<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await operation() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

func describeSettings(_ s: ExportSettings) -> String {
    "mode=\(s.modeByte) limit=\(s.exportLimit)W capacity=\(s.totalCapacity)W ct=\(s.ctRatio)"
}

func describeChange(_ c: SettingsChange) -> String {
    var parts: [String] = []
    if let v = c.exportLimit { parts.append("limit=\(v)W") }
    if let v = c.totalCapacity { parts.append("capacity=\(v)W") }
    if let v = c.controlMode { parts.append("mode=\(v.rawValue)") }
    if let v = c.meterMode { parts.append("meter-mode=\(v.rawValue)") }
    return parts.joined(separator: " ")
}
