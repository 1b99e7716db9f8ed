#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Locking
import Threading

/// One thread that waits in `poll()` for the sockets of every async transaction in the process,
/// and resumes each waiting task when its socket is ready or its deadline has passed.
///
/// Device I/O therefore costs a descriptor and a few hundred bytes per transaction in flight, not
/// a thread per device: a head-end polling a thousand sites runs this one thread. The thread
/// starts with the first waiter and ends when none is left, so an idle process holds none.
public final class PollLoop: Sendable {
    /// The loop every `AsyncTCPStream` uses unless given another.
    public static let shared = PollLoop()

    private struct Waiter {
        let descriptor: Int32
        let events: Int16
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Result<Void, SocketError>, Never>
    }

    private struct State {
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 1
        var running = false
    }

    private let state = Locked(State())
    private let wake = WakeSignal()

    public init() {}

    /// Waiters registered now; for tests and benchmarks.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Suspends until `descriptor` is ready for `events` (`POLLIN`, `POLLOUT`), `deadline` passes
    /// (`.timedOut`), or the task is cancelled (`.cancelled`, at once).
    public func wait(for descriptor: Int32, events: Int16, until deadline: ContinuousClock.Instant) async throws(SocketError) {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, SocketError>, Never>) in
                let start = state.withLock { state -> Bool? in
                    // Cancelled before it was registered: the handler below found nothing to remove.
                    if Task.isCancelled { return nil }
                    state.waiters[id] = Waiter(descriptor: descriptor, events: events, deadline: deadline, continuation: continuation)
                    defer { state.running = true }
                    return !state.running
                }
                switch start {
                case nil: continuation.resume(returning: .failure(.cancelled))
                case true?: BlockingThread.detached { [self] in run() }
                case false?: wake.signal()
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume(returning: .failure(.cancelled))
        }
        try result.get()
    }

    /// The loop's thread: polls every registered descriptor and the wake pipe, resumes the ready
    /// and the expired waiters (outside the lock), and ends when nobody waits.
    private func run() {
        var entries: [pollfd] = []
        var ids: [UInt64] = []
        while true {
            entries.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
            entries.append(pollfd(fd: wake.readDescriptor, events: Int16(POLLIN), revents: 0))
            let earliest = state.withLock { state -> ContinuousClock.Instant?? in
                if state.waiters.isEmpty {
                    state.running = false
                    return .none
                }
                var earliest: ContinuousClock.Instant?
                for (id, waiter) in state.waiters {
                    ids.append(id)
                    entries.append(pollfd(fd: waiter.descriptor, events: waiter.events, revents: 0))
                    earliest = min(earliest ?? waiter.deadline, waiter.deadline)
                }
                return .some(earliest)
            }
            guard case .some(let deadline) = earliest else { return }
            _ = pollDescriptors(&entries, timeout: deadline.map { max(.zero, $0 - .now) })
            if entries[0].revents != 0 { wake.drain() }
            let now = ContinuousClock.now
            let finished = state.withLock { state -> [(CheckedContinuation<Result<Void, SocketError>, Never>, Result<Void, SocketError>)] in
                var finished: [(CheckedContinuation<Result<Void, SocketError>, Never>, Result<Void, SocketError>)] = []
                for (index, id) in ids.enumerated() {
                    guard let waiter = state.waiters[id] else { continue }
                    // Ready, hung up or in error: the caller's next call tells which.
                    if entries[index + 1].revents != 0 {
                        finished.append((waiter.continuation, .success(())))
                    } else if waiter.deadline <= now {
                        finished.append((waiter.continuation, .failure(.timedOut)))
                    } else {
                        continue
                    }
                    state.waiters[id] = nil
                }
                return finished
            }
            for (continuation, result) in finished { continuation.resume(returning: result) }
        }
    }
}
