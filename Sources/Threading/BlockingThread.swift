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

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let status = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(status == 0, "pthread_create failed: \(status)")
        handle = thread
    }

    /// Lets the thread release its resources when it ends, for threads nobody joins. Call at most
    /// once, and never with `join()`.
    public func detach() {
        #if canImport(Glibc)
        pthread_detach(handle)
        #else
        if let handle { pthread_detach(handle) }
        #endif
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
