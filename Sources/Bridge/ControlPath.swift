#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Locking
import Logging
import ModbusServer
import SEC1000Client
import UnixClock
import SEC1000Protocol
import Sockets

/// The one way a settings change reaches a device, from any front end: the same checks (control
/// enabled, requester allowed, a valid change within the operator's limits), the same device
/// confirmation (set, then read back), the same audit line and register-309 result.
///
/// It holds no queue: its device's `DeviceService` runs every transaction, one at a time, so a
/// read-back always belongs to its own write. Refused requests are logged once per requester and
/// reason, then summarized with a count (`refusalLog`): a flood of them must not flood the log.
public struct ControlPath: Sendable {
    public let unit: UInt8
    let client: SEC1000Client
    let state: DeviceState
    let configuration: BridgeConfiguration
    let logger: Logger
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

    /// Judges a Modbus write before anything is queued: control enabled, the client allowed, the
    /// registers and values a valid change. A refusal is logged (rate-limited) and, for a bad
    /// value, recorded in register 309.
    func judge(_ request: WriteRequest) -> Judgement {
        let control = configuration.control
        // The logger already names the device and its unit; "unit-id" is what the client addressed (0 and 255 reach the first device).
        var audit: Logger.Metadata = [
            "client": "\(request.client)", "unit-id": "\(request.unit)", "registers": "\(ControlWrite.registers(of: request))",
        ]
        let refusal: ControlOutcome
        if !control.enabled {
            refusal = .refused(reason: "control is not enabled (--enable-control)", exception: .illegalFunction)
        } else if !control.allow.contains(where: { $0.contains(host: request.client.host) }) {
            refusal = .refused(reason: "client not in --control-allow", exception: .illegalFunction)
        } else {
            switch ControlWrite.change(from: request) {
            case .failure(let exception):
                refusal = .refused(reason: "\(exception)", exception: exception)
            case .success(let change):
                audit["new"] = "\(describeChange(change))"
                return .accepted(change, audit: audit)
            }
        }
        refuse(refusal, audit: audit, requester: request.client.host)
        return .refused(refusal)
    }

    /// Audits a change refused before it was queued, from any front end: the "control write
    /// refused" line (rate-limited per requester and reason) and, for a bad value, register 309.
    /// `requester` names who asked: a client's address, or the front end when it has no sender
    /// identity (MQTT).
    public func refuse(_ refusal: ControlOutcome, audit: Logger.Metadata, requester: String, now: ContinuousClock.Instant = .now) {
        var audit = audit
        audit["outcome"] = "\(refusal)"
        logRefusal(audit, requester: requester, now: now)
        if let result = refusal.writeResult { state.record(writeResult: result) }
    }

    enum Judgement {
        case accepted(SettingsChange, audit: Logger.Metadata)
        case refused(ControlOutcome)
    }

    /// Logs a refused write the first time its client and reason come up in a window; counts the rest.
    func logRefusal(_ audit: Logger.Metadata, requester: String, now: ContinuousClock.Instant = .now) {
        let key = RefusalKey(host: requester, reason: audit["outcome"].map { "\($0)" } ?? "")
        let (verdict, summaries) = refusalLog.withLock { limiter in
            (limiter.record(key, now: now), limiter.expire(now: now))
        }
        logSummaries(summaries)
        if verdict == .log { logger.notice("control write refused", metadata: audit) }
    }

    /// Writes the counts of refused writes whose window has ended; the device service calls it
    /// every cycle, so a flood that stops still gets its summary.
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

    /// Carries `change` out before `deadline`: validated against the limits, set, read back. The
    /// outcome goes to register 309 and, with `audit`, to the audit line; every attempt is audited.
    func carryOut(_ change: SettingsChange, audit: Logger.Metadata, deadline: ContinuousClock.Instant) async -> ControlOutcome {
        let known = state.current.control.meterMode
        let cached = state.current.control.settings
        let limit = configuration.control.writeTimeout
        let result = await withDeadline(deadline - .now) {
            () async -> Result<(before: ExportSettings, after: ExportSettings), ControlError> in
            do throws(ControlError) {
                return .success(try await client.apply(
                    change, knownMeterMode: known, limits: configuration.control.limits, policy: configuration.retry))
            } catch {
                return .failure(error)
            }
        } ?? .failure(.timedOut(limit))
        var audit = audit
        let outcome: ControlOutcome
        switch result {
        case .success(let settings):
            state.publish(settings: settings.after, meterMode: change.meterMode ?? known)
            outcome = .confirmed(before: settings.before, after: settings.after)
            audit["old"] = "\(describeSettings(settings.before))"
            audit["read-back"] = "\(describeSettings(settings.after))"
        case .failure(let error):
            if case .notConfirmed(_, let actual) = error { state.publish(settings: actual) }
            outcome = ControlOutcome(error)
            audit["old"] = "\(cached.map(describeSettings) ?? "not read yet")"
        }
        if let result = outcome.writeResult { state.record(writeResult: result) }
        audit["outcome"] = "\(outcome)"
        if case .confirmed = outcome {
            logger.notice("control write", metadata: audit)
        } else {
            logger.notice("control write failed", metadata: audit)
        }
        return outcome
    }

    /// Audits a change that never started (its requester gave up, or the bridge stopped).
    func recordUnstarted(_ outcome: ControlOutcome, audit: Logger.Metadata) {
        var audit = audit
        audit["outcome"] = "\(outcome)"
        if let result = outcome.writeResult { state.record(writeResult: result) }
        logger.notice("control write failed", metadata: audit)
    }

    /// Reads the settings (0x43) once and publishes them; `false` when the read failed.
    func refreshSettings() async -> Bool {
        do {
            state.publish(settings: try await client.readExportSettings(policy: .once))
            return true
        } catch {
            logger.debug("settings read failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Sets the device clock to the host's local time; `true` when the device answered.
    func syncClock() async -> Bool {
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

/// A change as the audit line names it (`limit=3000W mode=3`).
public func describeChange(_ c: SettingsChange) -> String {
    var parts: [String] = []
    if let v = c.exportLimit { parts.append("limit=\(v)W") }
    if let v = c.totalCapacity { parts.append("capacity=\(v)W") }
    if let v = c.controlMode { parts.append("mode=\(v.rawValue)") }
    if let v = c.meterMode { parts.append("meter-mode=\(v.rawValue)") }
    return parts.joined(separator: " ")
}
