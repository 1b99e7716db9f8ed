import Bridge
import Sockets
import TestSupport
import Testing

@Suite("Hostile and broken clients", .timeLimit(.minutes(1)))
struct HostileClientTests {
    static let loopback = SocketAddress(host: "127.0.0.1", port: 0)

    func connect(_ port: UInt16) throws -> TCPStream {
        try TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: port), timeout: .seconds(2))
    }

    /// Whether the server closes `stream` within `timeout` (reads until end of stream).
    func closedByServer(_ stream: borrowing TCPStream, within timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                _ = try stream.read(upTo: 4096, deadline: deadline)
            } catch {
                return error == .closedByPeer || error == .connectionReset
            }
        }
    }

    @Test(arguments: [
        Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
        [0x12, 0x34, 0x00, 0x01, 0x00, 0x06, 0x01, 0x03, 0, 0, 0, 1],  // protocol id 1
        [0x12, 0x34, 0x00, 0x00, 0x00, 0x00, 0x01],                    // length 0
        [0x12, 0x34, 0x00, 0x00, 0x01, 0x00, 0x01, 0x03],              // length 256, beyond any frame
    ])
    func garbageClosesTheConnectionAndOthersAreServed(garbage: [UInt8]) async throws {
        try await BridgeHarness.run { harness in
            let port = harness.port
            let closed = await offPool { () -> Bool in
                guard let stream = try? connect(port) else { return false }
                guard (try? stream.write(garbage, deadline: .now + .seconds(1))) != nil else { return false }
                return closedByServer(stream, within: .seconds(3))
            }
            #expect(closed)
            #expect(harness.runtime.server.statistics.garbageClosed == 1)
            #expect(await offPool { try? ModbusClient(port: port).read(0, 2) }?.values != nil)
        }
    }

    /// libmodbus's own receive loop would stall every client for the byte timeout here (upstream
    /// issue #215); the bridge frames requests itself, so the others do not wait.
    @Test func halfAFrameDelaysNobody() async throws {
        try await BridgeHarness.run { harness in
            let port = harness.port
            let worst = await offPool { () -> Duration? in
                guard let dribbler = try? connect(port),
                      (try? dribbler.write([0x00, 0x01, 0x00, 0x00, 0x00], deadline: .now + .seconds(1))) != nil,
                      let client = try? ModbusClient(port: port)
                else { return nil }
                var worst = Duration.zero
                for _ in 0..<50 {
                    let start = ContinuousClock.now
                    guard client.read(0, 28).values != nil else { return nil }
                    worst = max(worst, .now - start)
                }
                // The dribbler finishes its frame and still gets its answer.
                let rest: [UInt8] = [0x06, 0x01, 0x03, 0x00, 0x12, 0x00, 0x02]
                let answer = rawExchange(on: dribbler, rest)
                return answer == [0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x01, 0x03, 0x04, 0xFF, 0xFF, 0xFE, 0xA1] ? worst : nil
            }
            let measured = try #require(worst)
            // A stall would be libmodbus's 500 ms byte timeout; a loopback read takes well under 1 ms.
            #expect(measured < .milliseconds(250))
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await BridgeHarness.run { harness in
            let port = harness.port
            let answers = await offPool { () -> [[UInt8]] in
                guard let stream = try? connect(port) else { return [] }
                var burst: [UInt8] = []
                for id: UInt8 in 1...3 { burst += [0, id, 0, 0, 0, 6, 1, 0x03, 0, 20, 0, 2] }
                burst += [0, 4, 0, 0, 0, 6, 1, 0x03, 0, 29, 0, 1]
                guard (try? stream.write(burst, deadline: .now + .seconds(1))) != nil else { return [] }
                return (0..<4).compactMap { _ in
                    let deadline = ContinuousClock.now + .seconds(2)
                    guard let header = try? stream.read(exactly: 6, deadline: deadline),
                          let rest = try? stream.read(exactly: Int(header[5]), deadline: deadline) else { return nil }
                    return header + rest
                }
            }
            #expect(answers.count == 4)
            for (index, answer) in answers.prefix(3).enumerated() {
                #expect(answer == [0, UInt8(index + 1), 0, 0, 0, 7, 1, 0x03, 4, 0, 0, 0x0D, 0x3A])
            }
            #expect(answers.last == [0, 4, 0, 0, 0, 3, 1, 0x83, 0x02])
        }
    }

    @Test func aFloodOfIdleConnectionsCannotLockOutARealMaster() async throws {
        try await BridgeHarness.run(configure: { $0.maxConnections = 8 }) { harness in
            let port = harness.port
            let served = await offPool { () -> Bool in
                // libmodbus clients that connect and then say nothing.
                let idle = (0..<20).compactMap { _ in try? ModbusClient(port: port) }
                guard idle.count == 20 else { return false }
                // The newest connection wins a place: the longest-idle ones were closed.
                guard let client = try? ModbusClient(port: port) else { return false }
                return client.read(0, 28).values != nil && client.read(200, 10).values != nil
            }
            #expect(served)
            try await waitUntil("the server to count its evictions") { harness.runtime.server.statistics.evicted >= 13 }
            #expect(harness.runtime.server.statistics.open <= 8)
        }
    }

    @Test func idleConnectionsAreClosed() async throws {
        try await BridgeHarness.run(configure: { $0.idleTimeout = .milliseconds(300) }) { harness in
            let port = harness.port
            let closed = await offPool { () -> Bool in
                guard let stream = try? connect(port) else { return false }
                return closedByServer(stream, within: .seconds(3))
            }
            #expect(closed)
            #expect(harness.runtime.server.statistics.idleClosed >= 1)
        }
    }

    @Test func aClientThatNeverReadsIsDroppedAndOthersAreServed() async throws {
        try await BridgeHarness.run { harness in
            let port = harness.port
            let outcome = await offPool { () -> Bool in
                guard let greedy = try? connect(port) else { return false }
                let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 28]
                let burst = Array([[UInt8]](repeating: request, count: 1000).joined())
                // Keep sending for a bounded time; the server stops taking bytes or closes us.
                let deadline = ContinuousClock.now + .seconds(3)
                while ContinuousClock.now < deadline {
                    if (try? greedy.write(burst, deadline: .now + .milliseconds(200))) == nil { break }
                }
                guard let client = try? ModbusClient(port: port) else { return false }
                return client.read(0, 28).values != nil
            }
            #expect(outcome)
        }
    }
}
