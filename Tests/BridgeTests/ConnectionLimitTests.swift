#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import Foundation
import Locking
import ModbusServer
import Sockets
import TestSupport
import Testing

/// A bank that serves zeros on unit 1 and holds every write until the test finishes it.
final class HeldWriteBank: RegisterBank {
    private let held = Locked<[WriteCompletion]>([])

    var pending: Int { held.withLock { $0.count } }

    func serves(unit: UInt8) -> Bool { unit == 1 }

    func read(unit: UInt8, address: UInt16, into registers: UnsafeMutableBufferPointer<UInt16>) -> ModbusException? {
        registers.update(repeating: 0)
        return nil
    }

    func write(_ request: WriteRequest, completion: WriteCompletion) -> ModbusException? {
        held.withLock { $0.append(completion) }
        return nil
    }

    func finishAll() {
        for completion in held.withLock({ held in defer { held.removeAll() }; return held }) { completion(.success) }
    }
}

/// A raw connection to 127.0.0.1:`port` from the local address `source` (any 127.x address is local on Linux).
func connect(port: UInt16, from source: String) -> Connection? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    var local = sockaddr_in()
    local.sin_family = sa_family_t(AF_INET)
    inet_pton(AF_INET, source, &local.sin_addr)
    var remote = sockaddr_in()
    remote.sin_family = sa_family_t(AF_INET)
    remote.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
    let size = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } } == 0
        && withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, size) } } == 0
    guard ok else { close(fd); return nil }
    return Connection(adopting: TCPStream(adoptingConnected: fd))
}

/// Waits on a thread of its own until `condition` holds, checking every 5 ms, for at most `timeout`.
func blockingWait(timeout: Duration = .seconds(5), until condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        pace(.milliseconds(5))
    }
    return true
}

/// The connection limit (issue 14, defect 2): newcomers never displace a connection that has sent
/// requests or waits for a write; one address gets at most its share.
@Suite("Connection limit", .timeLimit(.minutes(1)))
struct ConnectionLimitTests {
    static let read: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 2]
    static let write: [UInt8] = [0, 2, 0, 0, 0, 6, 1, 0x06, 0x01, 0x30, 0, 1]

    func withServer(
        _ configure: (inout ServerConfiguration) -> Void, _ body: (ModbusTCPServer, HeldWriteBank) async throws -> Void
    ) async throws {
        var configuration = ServerConfiguration(listen: SocketAddress(host: "127.0.0.1", port: 0))
        configure(&configuration)
        let bank = HeldWriteBank()
        let server = try ModbusTCPServer(configuration: configuration, bank: bank, logger: quietLogger)
        server.start()
        defer { server.stop() }
        try await body(server, bank)
    }

    @Test func aPendingWriteIsNeverEvicted() async throws {
        try await withServer({ $0.maxConnections = 2 }) { server, bank in
            let port = server.port
            let answer = await offPool { () -> Result<[UInt8], SocketError>? in
                guard let writer = Connection(port: port), writer.send(Self.write),
                      blockingWait(until: { bank.pending == 1 })
                else { return nil }
                // Five newcomers at a limit of 2: four are closed for the next, none for the writer.
                let idle = (0..<5).compactMap { _ in Connection(port: port) }
                guard idle.count == 5, blockingWait(until: { server.statistics.evicted >= 4 }) else { return nil }
                bank.finishAll()
                return writer.readAnswer(timeout: .seconds(3))
            }
            #expect(answer == .success(Self.write), "the writer got its answer, not an end of stream")
            #expect(server.statistics.evicted == 4)
        }
    }

    @Test func aNewcomerIsRefusedWhenEveryConnectionHasSentRequests() async throws {
        try await withServer({ $0.maxConnections = 2 }) { server, _ in
            let port = server.port
            let outcome = await offPool { () -> (Bool, Bool, Bool)? in
                guard let first = Connection(port: port), let second = Connection(port: port),
                      first.send(Self.read), (try? first.readAnswer().get()) != nil,
                      second.send(Self.read), (try? second.readAnswer().get()) != nil,
                      let newcomer = Connection(port: port)
                else { return nil }
                let refused = newcomer.closedByServer(within: .seconds(3))
                let firstServed = first.send(Self.read) && (try? first.readAnswer().get()) != nil
                let secondServed = second.send(Self.read) && (try? second.readAnswer().get()) != nil
                return (refused, firstServed, secondServed)
            }
            let (refused, firstServed, secondServed) = try #require(outcome)
            #expect(refused, "the newcomer is closed at once")
            #expect(firstServed && secondServed, "the masters keep their connections")
            #expect(server.statistics.refused == 1 && server.statistics.evicted == 0)
        }
    }

    @Test func oneAddressGetsAtMostItsShare() async throws {
        try await withServer({ $0.maxConnections = 8; $0.maxConnectionsPerAddress = 2 }) { server, _ in
            let port = server.port
            let outcome = await offPool { () -> (Bool, Bool, Bool, Int)? in
                guard let first = connect(port: port, from: "127.0.0.1"), let second = connect(port: port, from: "127.0.0.1"),
                      let third = connect(port: port, from: "127.0.0.1")
                else { return nil }
                let thirdRefused = third.closedByServer(within: .seconds(3))
                // Another address still gets in, and the first two are served.
                guard let other = connect(port: port, from: "127.0.0.2") else { return nil }
                let otherServed = other.send(Self.read) && (try? other.readAnswer().get()) != nil
                let firstServed = first.send(Self.read) && (try? first.readAnswer().get()) != nil
                    && second.send(Self.read) && (try? second.readAnswer().get()) != nil
                // Counted while the three connections are still open (they close as this closure returns).
                return (thirdRefused, otherServed, firstServed, server.statistics.open)
            }
            let (thirdRefused, otherServed, firstServed, open) = try #require(outcome)
            #expect(thirdRefused, "the third connection from 127.0.0.1 is refused")
            #expect(otherServed, "127.0.0.2 is served")
            #expect(firstServed)
            #expect(server.statistics.refused == 1 && open == 3)
        }
    }

    @Test func theOptionReachesTheServerAndIsChecked() async throws {
        let bad = try await runSEC1000(["bridge", "--simulate", "--max-connections-per-address", "0"])
        #expect(bad.status == 64)
        #expect(bad.errors.contains("--max-connections-per-address") && bad.errors.contains("from 1 to 10000"), "\(bad.errors)")
    }
}

