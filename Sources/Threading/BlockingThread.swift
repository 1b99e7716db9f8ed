#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A dedicated OS thread for a blocking loop, kept off Swift's cooperative thread pool
/// (which is only as wide as the core count, so one blocked task can stall the program).
public struct BlockingThread: Sendable {
    private final class Box: @unchecked Sendable {
        // Written once before the thread starts and read once by it: no concurrent access.
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    #if canImport(Glibc)
    private let handle: pthread_t
    #else
    private let handle: pthread_t?
    #endif

    /// Starts `body` on a new thread that someone will `join()`.
    public init(_ body: @escaping @Sendable () -> Void) {
        handle = Self.start(body, detached: false)
    }

    /// Starts `body` on a new thread that nobody joins: created detached, so it releases its
    /// resources when it ends. (Detaching after the start races with the thread's own end.)
    public static func detached(_ body: @escaping @Sendable () -> Void) {
        _ = start(body, detached: true)
    }

    #if canImport(Glibc)
    private typealias Handle = pthread_t
    #else
    private typealias Handle = pthread_t?
    #endif

    private static func start(_ body: @escaping @Sendable () -> Void, detached: Bool) -> Handle {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let status = pthread_create(&thread, &attributes, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(status == 0, "pthread_create failed: \(status)")
        return thread
    }

    /// Waits for the thread to finish. Call at most once.
    public func join() {
        #if canImport(Glibc)
        pthread_join(handle, nil)
        #else
        if let handle { pthread_join(handle, nil) }
        #endif
    }
}
