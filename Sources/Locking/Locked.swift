#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value that threads share, behind a lock: the one way state is shared across threads here.
///
/// A pthread mutex rather than the standard library's `Mutex`: ThreadSanitizer intercepts pthread
/// locks, but on Linux it cannot see the futex under `Mutex`, and reports every access that `Mutex`
/// alone guards as a race (`make sanitize` runs every test under ThreadSanitizer). Uncontended,
/// both cost a pair of atomic operations.
public final class Locked<Value> {
    // Allocated once and never moved: a pthread mutex must keep its address.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init: \(status)")
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock; `body` must not call back into this lock.
    public func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

// Only the lock touches the value, so the box may cross threads when the value may.
extension Locked: @unchecked Sendable where Value: Sendable {}
