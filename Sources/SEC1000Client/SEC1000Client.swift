#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import SEC1000Protocol
import Sockets
import Locking

/// How often to try a request, and how long to wait between tries.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all (at least 1).
    public var attempts: Int
    /// Pause after a failed attempt.
    public var wait: Duration

    public init(attempts: Int, wait: Duration) {
        self.attempts = max(1, attempts)
        self.wait = wait
    }

    /// The original tool's policy: 10 attempts, 5 s apart.
    public static let standard = RetryPolicy(attempts: 10, wait: .seconds(5))
    /// One attempt.
    public static let once = RetryPolicy(attempts: 1, wait: .zero)
}

/// A client for one SEC1000.
///
/// Transactions to the device are serialized and spaced by at least `minimumGap` from the end of
/// the previous one, whoever asks: the device stops answering when it is polled too fast. Every
/// wait suspends the calling task (the transaction's socket waits on a shared `PollLoop`), so a
/// client holds no thread, and task cancellation ends a transaction at once, whether it waits
/// for its turn, for the gap, or for the device.
public final class SEC1000Client: Sendable {
    public let address: SocketAddress
    public let timeouts: Timeouts
    public let minimumGap: Duration
    /// Measurements outside these bounds fail the transaction with `.implausible`.
    public let plausibility: PlausibilityBounds

    private let loop: PollLoop
    private let turn = FIFOGate()
    /// When the last transaction ended; written only by the task holding `turn`.
    private let lastTransactionEnd = Locked<ContinuousClock.Instant?>(nil)

    public init(
        address: SocketAddress, timeouts: Timeouts = Timeouts(), minimumGap: Duration = .seconds(1),
        plausibility: PlausibilityBounds = .standard, loop: PollLoop = .shared
    ) {
        self.address = address
        self.timeouts = timeouts
        self.minimumGap = minimumGap
        self.plausibility = plausibility
        self.loop = loop
    }

    /// When a transaction asked for now would start: after the gap that follows the last one.
    public var nextStart: ContinuousClock.Instant {
        let now = ContinuousClock.now
        return lastTransactionEnd.withLock { $0 }.map { max(now, $0 + minimumGap) } ?? now
    }

    /// One transaction, with no retry.
    ///
    /// Cancellation returns `.cancelled` at once, whether the transaction is waiting for its turn,
    /// for the gap, or for the device.
    public func send(_ request: Request) async throws(SEC1000Error) -> Response {
        guard await turn.enter() else { throw .cancelled }
        defer { turn.leave() }
        if let last = lastTransactionEnd.withLock({ $0 }), last + minimumGap > .now {
            do { try await Task.sleep(until: last + minimumGap, clock: .continuous) } catch { throw .cancelled }
        }
        defer { lastTransactionEnd.withLock { $0 = ContinuousClock.now } }
        let response = try await performTransaction(request, with: address, timeouts: timeouts, loop: loop)
        // A valid frame can still carry values no meter measures: a failed attempt, like a bad frame.
        if case .measurements(let m) = response, let reading = m.implausibility(within: plausibility) {
            // The decoder accepts only the canonical encoding, so this is the frame received.
            throw .implausible(reading, received: ResponseEncoder.encode(response))
        }
        return response
    }

    /// Sends `request` until it succeeds or the policy's attempts are spent.
    ///
    /// `onFailure` sees every failed attempt (its number from 1, and the error), so a caller can
    /// count and log them. Throws the last attempt's error.
    public func send(
        _ request: Request, policy: RetryPolicy, onFailure: (Int, SEC1000Error) -> Void = { _, _ in }
    ) async throws(SEC1000Error) -> Response {
        var attempt = 1
        while true {
            do {
                return try await send(request)
            } catch {
                onFailure(attempt, error)
                guard error.isRetryable, attempt < policy.attempts else { throw error }
            }
            do {
                try await Task.sleep(for: policy.wait)
            } catch {
                throw .cancelled
            }
            attempt += 1
        }
    }

    /// Reads the measurements, retrying per `policy`.
    public func readMeasurements(
        policy: RetryPolicy = .standard, onFailure: (Int, SEC1000Error) -> Void = { _, _ in }
    ) async throws(SEC1000Error) -> Measurements {
        guard case .measurements(let m) = try await send(.readMeasurements, policy: policy, onFailure: onFailure) else {
            throw .malformed(reason: "not a measurements answer", received: [])
        }
        return m
    }

    /// Reads the export-limit settings, retrying per `policy`.
    public func readExportSettings(
        policy: RetryPolicy = .standard, onFailure: (Int, SEC1000Error) -> Void = { _, _ in }
    ) async throws(SEC1000Error) -> ExportSettings {
        guard case .exportSettings(let s) = try await send(.readExportSettings, policy: policy, onFailure: onFailure) else {
            throw .malformed(reason: "not an export settings answer", received: [])
        }
        return s
    }
}

/// Lets one task at a time through, in arrival order; a task cancelled while it waits leaves the
/// line at once. (An actor alone would interleave its callers at every `await`.)
final class FIFOGate: Sendable {
    private struct State {
        var busy = false
        var nextID: UInt64 = 0
        var waiting: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
    }

    private let state = Locked(State())

    /// Waits for the turn; `false` if the task was cancelled first (it then does not hold it).
    func enter() async -> Bool {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    if !state.busy {
                        state.busy = true
                        return true
                    }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { state in
                state.waiting.firstIndex { $0.id == id }.map { state.waiting.remove(at: $0).continuation }
            }?.resume(returning: false)
        }
    }

    /// Hands the turn to the next in line, or frees it.
    func leave() {
        state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard !state.waiting.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst().continuation
        }?.resume(returning: true)
    }
}
