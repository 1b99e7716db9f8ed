#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Locking

/// A connected TCP socket whose every operation is bounded by a deadline.
///
/// The socket is non-blocking and every wait goes through `poll()`, so no call can hang past its
/// deadline however the peer behaves. The descriptor is closed when the value goes away.
public struct TCPStream: ~Copyable, Sendable {
    public let descriptor: Int32
    private let interrupter: SocketInterrupter?

    init(adopting descriptor: Int32, interrupter: SocketInterrupter? = nil) {
        self.descriptor = descriptor
        self.interrupter = interrupter
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Takes over a socket connected elsewhere (a test that binds its own source address): made
    /// non-blocking, and closed when the value goes away.
    public init(adoptingConnected descriptor: Int32) {
        _ = setNonBlocking(descriptor)
        self.init(adopting: descriptor)
    }

    deinit {
        interrupter?.unregister(descriptor)
        // Shut down first: the peer hears the end at once even while a copy of the descriptor
        // lives on, in a child process another thread is spawning, between its fork and its exec.
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }

    /// Connects to `address`, trying each resolved address in turn, within `timeout` in all.
    ///
    /// `interrupter`, when given, can abort the connection and every later wait from another thread.
    public static func connect(
        to address: SocketAddress, timeout: Duration, interrupter: SocketInterrupter? = nil
    ) throws(SocketError) -> TCPStream {
        let deadline = ContinuousClock.now + timeout
        var lastError = SocketError.connectionRefused
        for candidate in try address.resolve() {
            let fd = newStreamSocket(family: candidate.family)
            guard fd >= 0 else { lastError = .fromErrno("socket"); continue }
            guard setNonBlocking(fd) else { lastError = .fromErrno("fcntl"); close(fd); continue }
            if let interrupter, !interrupter.register(fd) { close(fd); throw .cancelled }
            let stream = TCPStream(adopting: fd, interrupter: interrupter)
            let status = candidate.withSockaddr { connectSocket(fd, $0, $1) }
            if status == 0 { return stream }
            guard errno == EINPROGRESS else { lastError = .fromErrno("connect"); continue }
            do throws(SocketError) {
                try stream.wait(for: Int16(POLLOUT), until: deadline)
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { return stream }
                // An interrupt shuts the socket down, which a connect in progress sees as a reset.
                if interrupter?.isInterrupted == true { throw .cancelled }
                lastError = .fromErrno("connect", error)
            } catch {
                if error == .timedOut || error == .cancelled { throw error }
                lastError = error
            }
        }
        throw lastError
    }

    /// Sends all of `bytes` before `deadline`.
    public func write(_ bytes: [UInt8], deadline: ContinuousClock.Instant) throws(SocketError) {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                send(descriptor, raw.baseAddress! + sent, bytes.count - sent, sendFlags)
            }
            if count > 0 { sent += count; continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                try wait(for: Int16(POLLOUT), until: deadline)
                continue
            }
            throw failure("send")
        }
    }

    /// Reads exactly `count` bytes before `deadline`, never more.
    ///
    /// On a timeout or a closed connection the error carries no bytes; use `read(upTo:)` to keep
    /// what arrived so far.
    public func read(exactly count: Int, deadline: ContinuousClock.Instant) throws(SocketError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            bytes += try read(upTo: count - bytes.count, deadline: deadline)
        }
        return bytes
    }

    /// Reads between 1 and `count` bytes before `deadline`; throws `.closedByPeer` at end of stream.
    public func read(upTo count: Int, deadline: ContinuousClock.Instant) throws(SocketError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress!, count, 0) }
            if received > 0 { return Array(buffer[0..<received]) }
            if received == 0 {
                if interrupter?.isInterrupted == true { throw .cancelled }
                throw .closedByPeer
            }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { throw failure("recv") }
            try wait(for: Int16(POLLIN), until: deadline)
        }
    }

    /// The error for a failed `call`: a cancellation if the socket was interrupted (its shutdown
    /// makes the call fail with EPIPE or ECONNRESET), else what errno says.
    private func failure(_ call: String) -> SocketError {
        let code = errno
        return interrupter?.isInterrupted == true ? .cancelled : .fromErrno(call, code)
    }

    /// Sleeps for `duration` unless interrupted first; `false` if interrupted.
    public static func sleep(_ duration: Duration, interrupter: SocketInterrupter) -> Bool {
        let deadline = ContinuousClock.now + duration
        // Short slices: an interrupt has no descriptor to wake here, and the pauses are brief.
        while !interrupter.isInterrupted {
            let remaining = deadline - .now
            guard remaining > .zero else { return true }
            var entry = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&entry, 1, milliseconds(min(remaining, .milliseconds(10))))
        }
        return false
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    func wait(for events: Int16, until deadline: ContinuousClock.Instant) throws(SocketError) {
        while true {
            if interrupter?.isInterrupted == true { throw .cancelled }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw .timedOut }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let status = poll(&entry, 1, milliseconds(remaining))
            if status > 0 { return }
            if status < 0 && errno != EINTR { throw .fromErrno("poll") }
        }
    }

    /// The peer's numeric address.
    public var peer: (host: String, port: UInt16) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) }
        }
        return numericHost(storage, length: length)
    }
}

/// Lets another thread abort a blocking socket operation, for cancellation and shutdown.
///
/// The owner registers its descriptor; `interrupt()` shuts it down, which wakes any `poll()` on it.
public final class SocketInterrupter: Sendable {
    private struct State {
        var descriptor: Int32?
        var interrupted = false
        var handlers: [@Sendable () -> Void] = []
    }
    private let state = Locked(State())

    public init() {}

    public var isInterrupted: Bool { state.withLock { $0.interrupted } }

    /// Aborts the current and every later operation, and runs the `onInterrupt` handlers.
    public func interrupt() {
        let handlers = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.interrupted else { return [] }
            state.interrupted = true
            if let fd = state.descriptor { shutdown(fd, Int32(SHUT_RDWR)) }
            defer { state.handlers.removeAll() }
            return state.handlers
        }
        handlers.forEach { $0() }
    }

    /// Runs `handler` on interrupt (at once if already interrupted).
    public func onInterrupt(_ handler: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.interrupted { return true }
            state.handlers.append(handler)
            return false
        }
        if now { handler() }
    }

    /// Allows interrupting `descriptor`; `false` if already interrupted.
    func register(_ descriptor: Int32) -> Bool {
        state.withLock { state in
            guard !state.interrupted else { return false }
            state.descriptor = descriptor
            return true
        }
    }

    /// Called before `descriptor` is closed, so that a late interrupt never touches a reused number.
    func unregister(_ descriptor: Int32) {
        state.withLock { state in
            if state.descriptor == descriptor { state.descriptor = nil }
        }
    }
}

func setNonBlocking(_ fd: Int32) -> Bool {
    let flags = fcntl(fd, F_GETFL, 0)
    return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
}

/// `poll()`'s timeout for `duration`, rounded up so a wait never ends early.
func milliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: max(0, ms))
}

#if canImport(Glibc)
let sendFlags = Int32(MSG_NOSIGNAL)
func connectSocket(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Glibc.connect(fd, address, length)
}
#else
let sendFlags: Int32 = 0
func connectSocket(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Darwin.connect(fd, address, length)
}
#endif
