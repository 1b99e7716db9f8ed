import Foundation
import Locking
import Threading

/// Runs blocking work (process waits, joins, libmodbus calls, raw sockets) on a thread of its own.
/// Not on the cooperative pool (as wide as the core count, two threads here: one blocked task
/// stalls every other test), and not on `DispatchQueue.global()`, which on Linux is that same
/// width and adds a thread for blocked work only after about a second.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        BlockingThread.detached { continuation.resume(returning: work()) }
    }
}

/// A value computed on a thread of its own, to be collected later.
public final class BlockingThreadResult<Value: Sendable>: Sendable {
    private let result = Locked<Value?>(nil)
    private let thread: BlockingThread

    public init(_ body: @escaping @Sendable () -> Value) {
        let result = self.result
        thread = BlockingThread { result.withLock { $0 = body() } }
    }

    /// Waits for the thread (blocking: call it off the cooperative pool).
    public func value() -> Value {
        thread.join()
        return result.withLock { $0! }
    }
}

/// Everything a stream has delivered so far, read on a thread of its own.
public final class StreamText: Sendable {
    private let collected = Locked("")

    public init(_ handle: FileHandle) {
        BlockingThread.detached { [collected] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                collected.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
    }

    public var text: String { collected.withLock { $0 } }
}

extension DispatchSemaphore {
    /// Waits without holding a cooperative thread; `false` after `timeout`.
    public func wait(upTo timeout: Duration) async -> Bool {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        return await offPool { self.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success }
    }
}
