#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening TCP socket (non-blocking). Port 0 binds an ephemeral port; `port` tells which.
public struct TCPListener: ~Copyable, Sendable {
    public let descriptor: Int32
    /// The port actually bound.
    public let port: UInt16

    deinit { close(descriptor) }

    /// Binds `address` (a host of `0.0.0.0` or `::` listens on every interface) and listens.
    ///
    /// The backlog holds connections the kernel has accepted and the owner not yet: when it is
    /// full the kernel drops new SYNs, and a client retries only after a second. A flood of
    /// connections fills 128 in a moment; 1024 rides out a burst (Linux caps it at somaxconn).
    public init(bind address: SocketAddress, backlog: Int32 = 1024) throws(SocketError) {
        var lastError = SocketError.system(call: "bind", errno: EADDRNOTAVAIL)
        for candidate in try address.resolve(passive: true) {
            let fd = newStreamSocket(family: candidate.family)
            guard fd >= 0 else { lastError = .fromErrno("socket"); continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let bound = candidate.withSockaddr { bind(fd, $0, $1) }
            guard bound == 0 else { lastError = .fromErrno("bind"); close(fd); continue }
            guard listen(fd, backlog) == 0 else { lastError = .fromErrno("listen"); close(fd); continue }
            guard setNonBlocking(fd) else { lastError = .fromErrno("fcntl"); close(fd); continue }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            self.descriptor = fd
            self.port = numericHost(storage, length: length).port
            return
        }
        throw lastError
    }

    /// Accepts one pending connection as a stream; `nil` when none is pending.
    public func accept() throws(SocketError) -> TCPStream? {
        guard let fd = try acceptDescriptor() else { return nil }
        return TCPStream(adopting: fd)
    }

    /// Accepts one pending connection as a non-blocking descriptor the caller owns; `nil` when none is pending.
    public func acceptDescriptor() throws(SocketError) -> Int32? {
        while true {
            let fd = acceptConnection(descriptor)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO: return nil
            default: throw .fromErrno("accept")
            }
        }
    }
}

/// Wakes a thread blocked in `poll()`: it polls `readDescriptor` along with its sockets.
public final class WakeSignal: Sendable {
    public let readDescriptor: Int32
    private let writeDescriptor: Int32

    public init() {
        var fds: [Int32] = [0, 0]
        precondition(newPipe(&fds), "pipe() failed: out of file descriptors")
        readDescriptor = fds[0]
        writeDescriptor = fds[1]
        _ = setNonBlocking(readDescriptor)
        _ = setNonBlocking(writeDescriptor)
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }

    /// Makes the next (or current) poll on `readDescriptor` return.
    public func signal() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Empties the pipe after a wake-up.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(readDescriptor, $0.baseAddress!, 64) }) > 0 {}
    }
}

/// The numeric address of the peer of `descriptor`.
public func peerAddress(of descriptor: Int32) -> SocketAddress {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) }
    }
    let (host, port) = numericHost(storage, length: length)
    return SocketAddress(host: host, port: port)
}

/// `poll()` that retries on EINTR and takes a `Duration` (`nil`: wait forever).
public func pollDescriptors(_ entries: inout [pollfd], timeout: Duration?) -> Int32 {
    let ms = timeout.map(milliseconds) ?? -1
    while true {
        let status = entries.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), ms) }
        if status >= 0 || errno != EINTR { return status }
    }
}
