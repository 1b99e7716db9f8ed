#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Hex
import Foundation
// Logging and SEC1000Protocol come in through SEC1000Client and SEC1000Simulator; the simulator
// needs a quiet logger, and the client's API speaks in the protocol's types.
import Logging
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import Threading
import Locking
import TestSupport
import Testing

/// The 56 bytes a real SEC1000 sent (the protocol notes' golden capture).
let goldenAnswer: [UInt8] = parseHexBytes("""
    04 52 45 56 4F 00 31 01 01 0B
    00 00 09 6A 00 00 09 64 00 00 09 69
    00 00 01 E0 00 00 01 86 00 00 01 FC
    00 00 01 27 FF FF FF 8E FF FF FD EC
    FF FF FE A1 00 00 0D 3A
    0F 42
    """)!

/// The original tool's JSON for the golden capture, as `sec1000 read` must print it.
let goldenJSON = #"{"v1": 241.0, "v2": 240.4, "v3": 240.9, "i1": 4.8, "i2": 3.9, "i3": 5.08, "p1": 0.295, "p2": -0.114, "p3": -0.532, "meters_power": -0.351, "inverters_power": 3.386}"#

let loopback = "127.0.0.1"

// MARK: Simulated devices

/// The simulator logs every request at info level; the tests' output should show failures only.
let quietLogger = Logger(label: "sec1000.tests.simulator", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs `body` against a started simulated device on an ephemeral loopback port, and stops the
/// device on every path. By default the device answers with the golden capture, so frames are exact.
func withDevice<T>(
    faults: FaultRates = .none, seed: UInt64? = 1, measurements: Measurements? = capturedMeasurements,
    _ body: (SimulatedDevice) async throws -> T
) async throws -> T {
    let configuration = SimulatorConfiguration(
        listen: SocketAddress(host: loopback, port: 0), faults: faults, seed: seed, hangLimit: .seconds(20))
    let device = try SimulatedDevice(configuration: configuration, logger: quietLogger)
    device.setMeasurements(measurements)
    device.start()
    defer { device.stop() }
    return try await body(device)
}

/// A client for a loopback port; no pacing unless asked, so tests do not wait out the default gap.
func makeClient(
    port: UInt16, timeouts: Timeouts = Timeouts(connect: .seconds(2), answer: .seconds(5)), gap: Duration = .zero
) -> SEC1000Client {
    SEC1000Client(address: SocketAddress(host: loopback, port: port), timeouts: timeouts, minimumGap: gap)
}

/// The error one attempt ends with, or `nil` if it succeeded.
func failure(of client: SEC1000Client, _ request: Request = .readMeasurements) async -> SEC1000Error? {
    do {
        _ = try await client.send(request)
        return nil
    } catch {
        return error
    }
}

/// A loopback port that nothing listens on and no other test can take: a TCP socket bound to it
/// and never put to listening, held for the rest of the test process (a connection to it is
/// refused). A port bound and closed again was once handed at once to a concurrent test's
/// simulator, whose dropped connection read as a reset instead of a refusal.
func closedPort() throws -> UInt16 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
            bind(descriptor, socketAddress, length) == 0 && getsockname(descriptor, socketAddress, &length) == 0
        }
    }
    guard bound else {
        let code = errno
        close(descriptor)
        throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
    }
    // Deliberately never closed: the port stays reserved until the test process ends.
    return UInt16(bigEndian: address.sin_port)
}

/// Runs `body` with a listener whose accept queue is full, so a new connection's SYN is dropped
/// and `connect` hangs the way it does for a device that is off behind a router.
func withUnansweredConnects<T>(_ body: (UInt16) async throws -> T) async throws -> T {
    // Linux queues backlog + 1 connections; the one held here fills the queue of a backlog of 0.
    let listener = try TCPListener(bind: SocketAddress(host: loopback, port: 0), backlog: 0)
    let held = try TCPStream.connect(to: SocketAddress(host: loopback, port: listener.port), timeout: .seconds(2))
    defer { _ = held.descriptor }  // keeps the queued connection until the body is done
    return try await body(listener.port)
}

/// The IPv4 sockets of this machine, from the kernel's table: addresses as `0100007F:04D2`
/// (127.0.0.1:1234), the state in hex (`0A` listening, `02` SYN_SENT), and the inode.
func loopbackSockets() -> [(local: Substring, remote: Substring, state: Substring, inode: Substring)] {
    readProcFile("/proc/net/tcp").split(separator: "\n").dropFirst().compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count > 9 else { return nil }
        return (fields[1], fields[2], fields[3], fields[9])
    }
}

/// 127.0.0.1:`port` as /proc/net/tcp writes it.
func procAddress(port: UInt16) -> String {
    let digits = String(port, radix: 16, uppercase: true)
    return "0100007F:" + String(repeating: "0", count: 4 - digits.count) + digits
}

/// Whether some socket is in SYN_SENT towards loopback port `port`: a client stuck in `connect`.
func connectIsPending(toPort port: UInt16) -> Bool {
    let remote = procAddress(port: port)
    return loopbackSockets().contains { $0.remote == remote && $0.state == "02" }
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`.
func isListening(port: UInt16, ownedBy pid: Int32) -> Bool {
    let local = procAddress(port: port)
    guard let socket = loopbackSockets().first(where: { $0.local == local && $0.state == "0A" }) else { return false }
    let fdDirectory = "/proc/\(pid)/fd"
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: fdDirectory)) ?? []
    return descriptors.contains { fd in
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(fd)")) == "socket:[\(socket.inode)]"
    }
}

/// A free loopback port below the kernel's ephemeral range: binding port 0 never hands it out,
/// so a parallel test cannot take it between this check and the process that binds it.
func freePortOutsideTheEphemeralRange() throws -> UInt16 {
    let range = readProcFile("/proc/sys/net/ipv4/ip_local_port_range").split(whereSeparator: \.isWhitespace)
    let ephemeralStart = range.first.flatMap { UInt16($0) } ?? 32768
    let candidates = max(1024, ephemeralStart &- 10000)..<max(1025, ephemeralStart)
    for _ in 0..<100 {
        let port = UInt16.random(in: candidates)
        if (try? TCPListener(bind: SocketAddress(host: loopback, port: port))) != nil { return port }
    }
    throw SocketError.system(call: "bind", errno: EADDRINUSE)
}

/// The whole of a /proc file. Foundation's readers trust the size `stat` gives, which is 0 there,
/// and return only the first page of a table that outgrew it.
func readProcFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

// MARK: Scripted peers

/// A one-connection server that plays a fixed script, for answers the simulator cannot produce
/// (a wrong command echo, garbage, a frame dribbled byte by byte) and for exact timing events.
final class ScriptedServer: Sendable {
    enum Step: Sendable {
        case send([UInt8])
        case pause(Duration)
        /// Keeps the connection open until the client closes it or `limit` passes.
        case holdOpen(limit: Duration)
    }

    let port: UInt16
    private let listener: TCPListener
    private let received = Locked<[UInt8]>([])
    private let clientClosed = Locked(false)
    private let requestArrived = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let thread = Locked<BlockingThread?>(nil)

    /// Listens on an ephemeral loopback port and plays `script` to the first connection, after
    /// reading one whole request frame from it.
    init(_ script: [Step]) throws {
        listener = try TCPListener(bind: SocketAddress(host: loopback, port: 0))
        port = listener.port
        let player = BlockingThread { [self] in
            play(script)
            finished.signal()
        }
        thread.withLock { $0 = player }
    }

    /// The request frame the client sent.
    var request: [UInt8] { received.withLock { $0 } }

    /// Whether the client closed the connection during a `holdOpen` step.
    var sawClientClose: Bool { clientClosed.withLock { $0 } }

    /// Waits until a whole request has arrived; `false` after `timeout`.
    func waitForRequest(timeout: Duration = .seconds(5)) async -> Bool {
        await requestArrived.wait(upTo: timeout)
    }

    /// Waits for the script to end and releases its thread; `false` if it is still running after `timeout`.
    func finish(timeout: Duration = .seconds(10)) async -> Bool {
        guard await finished.wait(upTo: timeout), let player = thread.withLock({ $0.take() }) else { return false }
        await offPool { player.join() }
        return true
    }

    private func play(_ script: [Step]) {
        var entries = [pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)]
        guard pollDescriptors(&entries, timeout: .seconds(10)) > 0 else { return }
        let accepted: TCPStream?
        do { accepted = try listener.accept() } catch { return }
        guard let stream = accepted else { return }
        do {
            let deadline = ContinuousClock.now + .seconds(10)
            let head = try stream.read(exactly: 2, deadline: deadline)
            let rest = try stream.read(exactly: Int(head[1]), deadline: deadline)
            received.withLock { $0 = head + rest }
            requestArrived.signal()
            for step in script {
                switch step {
                case .send(let bytes):
                    try stream.write(bytes, deadline: .now + .seconds(5))
                case .pause(let duration):
                    blockingSleep(duration)
                case .holdOpen(let limit):
                    let end = ContinuousClock.now + limit
                    while true {
                        do {
                            _ = try stream.read(upTo: 256, deadline: end)
                        } catch .timedOut {
                            break
                        } catch {
                            clientClosed.withLock { $0 = true }
                            break
                        }
                    }
                }
            }
        } catch {
            // The client went away early; the test's own assertions say whether that was wrong.
        }
    }
}

func blockingSleep(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 { request = remaining }
}

extension ContinuousClock.Instant {
    /// Time from this instant to now, in a form `#expect` prints readably.
    var elapsed: Duration { ContinuousClock.now - self }
}
