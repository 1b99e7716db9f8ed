#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Sockets
import Threading
import Testing

/// A connection the owner closes ends at once, whatever child processes other threads start:
/// a child holding a copy of a device connection kept it open, and the simulated device saw the
/// next transaction open beside it. Descriptors are close-on-exec, and a stream shuts its socket
/// down before closing it (a child holds copies between its fork and its exec).
@Suite("Descriptors and child processes")
struct InheritanceTests {
    func closesOnExec(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 }

    @Test func everyDescriptorIsCloseOnExec() throws {
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0))
        let stream = try TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: listener.port), timeout: .seconds(5))
        var ready = [pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)]
        _ = pollDescriptors(&ready, timeout: .seconds(5))
        let accepted = try #require(try listener.acceptDescriptor())
        defer { close(accepted) }
        let wake = WakeSignal()
        #expect(closesOnExec(listener.descriptor))
        #expect(closesOnExec(stream.descriptor))
        #expect(closesOnExec(accepted))
        #expect(fcntl(accepted, F_GETFL) & O_NONBLOCK != 0, "accepted descriptors are non-blocking")
        #expect(closesOnExec(wake.readDescriptor))
    }

    /// A child spawned bare, as `system()` or a plain `posix_spawn` would (Foundation's `Process`
    /// closes the descriptors it sees open, but not one another thread opens while it spawns),
    /// holds none of the connection's socket once it runs.
    @Test func aChildHoldsNoCopyOfAConnection() throws {
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0))
        let stream = try TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: listener.port), timeout: .seconds(5))
        let socketName = try #require(link("/proc/self/fd/\(stream.descriptor)"))
        #expect(socketName.hasPrefix("socket:"))

        // glibc's posix_spawn returns once the child has run its exec.
        let child = try spawnBare(["/bin/sleep", "30"])
        defer {
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
        }
        let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(child)/fd").compactMap { link("/proc/\(child)/fd/\($0)") }
        #expect(!held.isEmpty, "the child's descriptors could not be read")
        #expect(!held.contains(socketName), "the child holds \(socketName): \(held)")
    }

    /// Where a /proc descriptor entry points ("socket:[inode]", "pipe:[inode]", a path).
    func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Close-on-exec acts only at the exec: between a fork and its exec the child holds a copy
    /// of every descriptor. Dropping a stream still ends its connection at once.
    @Test func aDroppedStreamEndsItsConnectionWhileACopyOfItsDescriptorLives() throws {
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0))
        let connected = try TCPStream.connect(
            to: SocketAddress(host: "127.0.0.1", port: listener.port), timeout: .seconds(5))
        // The copy a forked child would hold.
        let copy = dup(connected.descriptor)
        var stream: TCPStream? = consume connected
        var ready = [pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)]
        _ = pollDescriptors(&ready, timeout: .seconds(5))
        let accepted = try #require(try listener.acceptDescriptor())
        defer { close(accepted) }
        defer { close(copy) }
        _ = stream.take()

        var closing = [pollfd(fd: accepted, events: Int16(POLLIN), revents: 0)]
        #expect(pollDescriptors(&closing, timeout: .seconds(5)) == 1, "no end of stream while a copy lives")
        var byte: UInt8 = 0
        #expect(recv(accepted, &byte, 1, Int32(MSG_DONTWAIT)) == 0)
    }

    /// Spawns `arguments` with no file actions: the child inherits every descriptor not marked
    /// close-on-exec.
    func spawnBare(_ arguments: [String]) throws -> pid_t {
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let status = posix_spawn(&pid, arguments[0], nil, nil, &argv, environ)
        try #require(status == 0, "posix_spawn: \(String(cString: strerror(status)))")
        return pid
    }
}
