#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connected TCP socket whose every operation is bounded by a deadline.
///
/// The socket is non-blocking and every wait goes through `poll()`, so no call can hang past its
/// deadline however the peer behaves. The descriptor is closed when the value goes away.
public struct TCPStream: ~Copyable, Sendable {
    public let descriptor: Int32

    init(adopting descriptor: Int32) {
        self.descriptor = descriptor
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
        // Shut down first: the peer hears the end at once even while a copy of the descriptor
        // lives on, in a child process another thread is spawning, between its fork and its exec.
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }

    /// Connects to `address`, trying each resolved address in turn, within `timeout` in all.
    public static func connect(to address: SocketAddress, timeout: Duration) throws(SocketError) -> TCPStream {
        let deadline = ContinuousClock.now + timeout
        var lastError = SocketError.connectionRefused
        for candidate in try address.resolve() {
            let fd = newStreamSocket(family: candidate.family)
            guard fd >= 0 else { lastError = .fromErrno("socket"); continue }
            guard setNonBlocking(fd) else { lastError = .fromErrno("fcntl"); close(fd); continue }
            let stream = TCPStream(adopting: fd)
            let status = candidate.withSockaddr { connectSocket(fd, $0, $1) }
            if status == 0 { return stream }
            guard errno == EINPROGRESS else { lastError = .fromErrno("connect"); continue }
            do throws(SocketError) {
                try stream.wait(for: Int16(POLLOUT), until: deadline)
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { return stream }
                lastError = .fromErrno("connect", error)
            } catch {
                if error == .timedOut { throw error }
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
            throw .fromErrno("send")
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
            if received == 0 { throw .closedByPeer }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { throw .fromErrno("recv") }
            try wait(for: Int16(POLLIN), until: deadline)
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    func wait(for events: Int16, until deadline: ContinuousClock.Instant) throws(SocketError) {
        while true {
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
