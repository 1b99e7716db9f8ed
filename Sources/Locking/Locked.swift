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
        // Error-checking, so that taking the lock again on its own thread traps, as `Mutex` does,
        // instead of deadlocking in silence.
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        defer { pthread_mutexattr_destroy(&attributes) }
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        let status = pthread_mutex_init(mutex, &attributes)
        precondition(status == 0, "pthread_mutex_init: \(status)")
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock; `body` must not take this lock again.
    public func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let status = pthread_mutex_lock(mutex)
        precondition(status == 0, "Locked.withLock inside withLock of the same lock (\(status))")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

// Only the lock touches the value, so the box may cross threads when the value may.
extension Locked: @unchecked Sendable where Value: Sendable {}
