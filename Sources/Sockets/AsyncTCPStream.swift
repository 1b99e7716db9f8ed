#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Threading

/// A connected TCP socket for async code: every wait suspends the task on a `PollLoop` instead of
/// blocking a thread, every operation is bounded by a deadline, and task cancellation ends a wait
/// at once with `.cancelled`. The descriptor is shut down and closed when the stream goes away.
public final class AsyncTCPStream {
    public let descriptor: Int32
    private let loop: PollLoop

    private init(adopting descriptor: Int32, loop: PollLoop) {
        self.descriptor = descriptor
        self.loop = loop
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        // As TCPStream: the peer hears the end even while a child process holds a copy.
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }

    /// Connects to `address`, trying each resolved address in turn, before `deadline`.
    ///
    /// A numeric address resolves at once; a host name is resolved on a thread of its own, since
    /// `getaddrinfo` blocks.
    public static func connect(
        to address: SocketAddress, deadline: ContinuousClock.Instant, loop: PollLoop = .shared
    ) async throws(SocketError) -> AsyncTCPStream {
        var lastError = SocketError.connectionRefused
        for candidate in try await resolve(address) {
            try Task.checkCancellation(or: .cancelled)
            let fd = newStreamSocket(family: candidate.family)
            guard fd >= 0 else { lastError = .fromErrno("socket"); continue }
            guard setNonBlocking(fd) else { lastError = .fromErrno("fcntl"); close(fd); continue }
            let stream = AsyncTCPStream(adopting: fd, loop: loop)
            if candidate.withSockaddr({ connectSocket(fd, $0, $1) }) == 0 { return stream }
            guard errno == EINPROGRESS else { lastError = .fromErrno("connect"); continue }
            try await loop.wait(for: fd, events: Int16(POLLOUT), until: deadline)
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 { return stream }
            lastError = .fromErrno("connect", error)
        }
        throw lastError
    }

    /// Sends all of `bytes` before `deadline`.
    public func write(_ bytes: [UInt8], deadline: ContinuousClock.Instant) async throws(SocketError) {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress! + sent, bytes.count - sent, sendFlags) }
            if count > 0 { sent += count; continue }
            guard count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { throw .fromErrno("send") }
            try await loop.wait(for: descriptor, events: Int16(POLLOUT), until: deadline)
        }
    }

    /// Reads between 1 and `count` bytes before `deadline`; throws `.closedByPeer` at end of stream.
    public func read(upTo count: Int, deadline: ContinuousClock.Instant) async throws(SocketError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress!, count, 0) }
            if received > 0 { return Array(buffer[0..<received]) }
            if received == 0 { throw .closedByPeer }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { throw .fromErrno("recv") }
            try await loop.wait(for: descriptor, events: Int16(POLLIN), until: deadline)
        }
    }

    private static func resolve(_ address: SocketAddress) async throws(SocketError) -> [ResolvedAddress] {
        if let numeric = try? address.resolve(numericOnly: true) { return numeric }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[ResolvedAddress], SocketError>, Never>) in
            BlockingThread.detached {
                continuation.resume(returning: Result { () throws(SocketError) -> [ResolvedAddress] in try address.resolve() })
            }
        }
        return try result.get()
    }
}

extension Task where Success == Never, Failure == Never {
    /// Throws `error` if the current task is cancelled.
    static func checkCancellation(or error: SocketError) throws(SocketError) {
        if Task.isCancelled { throw error }
    }
}
