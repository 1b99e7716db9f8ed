#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
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
/// the previous one, whoever asks: the device stops answering when it is polled too fast.
/// The blocking socket work runs on the client's own serial queue, never on Swift's cooperative
/// pool, and task cancellation aborts it at once.
public final class SEC1000Client: Sendable {
    public let address: SocketAddress
    public let timeouts: Timeouts
    public let minimumGap: Duration
    /// Measurements outside these bounds fail the transaction with `.implausible`.
    public let plausibility: PlausibilityBounds

    private let queue: DispatchQueue
    /// When the last transaction ended; touched only on `queue`, guarded for the compiler's sake.
    private let lastTransactionEnd = Locked<ContinuousClock.Instant?>(nil)

    public init(
        address: SocketAddress, timeouts: Timeouts = Timeouts(), minimumGap: Duration = .seconds(1),
        plausibility: PlausibilityBounds = .standard
    ) {
        self.address = address
        self.timeouts = timeouts
        self.minimumGap = minimumGap
        self.plausibility = plausibility
        self.queue = DispatchQueue(label: "sec1000.client.\(address)")
    }

    /// One transaction, with no retry.
    ///
    /// Cancellation returns `.cancelled` at once, whether the transaction is waiting for its turn,
    /// for the gap, or for the device.
    public func send(_ request: Request) async throws(SEC1000Error) -> Response {
        let interrupter = SocketInterrupter()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Response, SEC1000Error>, Never>) in
                let once = ResumeOnce(continuation)
                interrupter.onInterrupt { once.resume(.failure(.cancelled)) }
                queue.async { [self] in
                    once.resume(Result { () throws(SEC1000Error) -> Response in
                        try paced(request, interrupter: interrupter)
                    })
                }
            }
        } onCancel: {
            interrupter.interrupt()
        }
        return try result.get()
    }

    /// Runs on `queue`: waits out the gap, then performs the transaction.
    private func paced(_ request: Request, interrupter: SocketInterrupter) throws(SEC1000Error) -> Response {
        if interrupter.isInterrupted { throw .cancelled }
        if let last = lastTransactionEnd.withLock({ $0 }) {
            let wait = last + minimumGap - ContinuousClock.now
            if wait > .zero, !TCPStream.sleep(wait, interrupter: interrupter) { throw .cancelled }
        }
        defer { lastTransactionEnd.withLock { $0 = ContinuousClock.now } }
        let response = try performTransaction(request, with: address, timeouts: timeouts, interrupter: interrupter)
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

/// Resumes a continuation once, whoever comes first: the transaction or its cancellation.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Locked<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = Locked(continuation) }

    func resume(_ value: T) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
