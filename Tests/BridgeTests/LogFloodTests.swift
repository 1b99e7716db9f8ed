import Bridge
import ModbusServer
import Sockets
import TestSupport
import Testing

/// Repeated events are logged once per client, then summarized (issue 14, defect 3); allowed
/// writes are always audited.
@Suite("Log flood", .timeLimit(.minutes(2)))
struct LogFloodTests {
    @Test func theRateLimiterLogsTheFirstThenSummarizes() {
        let start = ContinuousClock.now
        var limiter = LogRateLimiter<String>(window: .seconds(60), capacity: 4)
        #expect(limiter.record("10.0.0.5", now: start) == .log)
        for second in 1...30 { #expect(limiter.record("10.0.0.5", now: start + .seconds(second)) == .suppress) }
        #expect(limiter.record("10.0.0.6", now: start + .seconds(10)) == .log, "another address is logged")
        #expect(limiter.expire(now: start + .seconds(59)).isEmpty, "the window has not ended")
        #expect(limiter.nextExpiry == start + .seconds(60))
        let summaries = limiter.expire(now: start + .seconds(60))
        #expect(summaries == [.init(key: "10.0.0.5", count: 30, window: .seconds(60))], "10.0.0.6 had nothing suppressed")
        // After its window, the address's next event is written again.
        #expect(limiter.record("10.0.0.5", now: start + .seconds(61)) == .log)
    }

    @Test func theRateLimiterStaysBoundedWhenAddressesCycle() {
        let start = ContinuousClock.now
        var limiter = LogRateLimiter<Int>(window: .seconds(60), capacity: 16)
        let logged = (0..<10_000).filter { limiter.record($0, now: start) == .log }.count
        #expect(limiter.trackedKeys == 16)
        #expect(logged == 17, "16 addresses, then one line for all the others")
        let summaries = limiter.expire(now: start + .seconds(60))
        #expect(summaries == [.init(key: nil, count: 10_000 - 17, window: .seconds(60))])
        #expect(limiter.trackedKeys == 0)
    }

    static func enabled(_ configuration: inout BridgeConfiguration) {
        configuration.control = ControlConfiguration(
            enabled: true, allow: [try! AddressRange(parsing: "127.0.0.0/8")], writeTimeout: .seconds(5))
    }

    @Test func refusedWritesAreSummarizedAndAllowedWritesAllAudited() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger, configure: Self.enabled) { harness in
            let port = harness.port
            let answers = await offPool { () -> (refused: Int, confirmed: Int) in
                guard let connection = Connection(port: port) else { return (0, 0) }
                var refused = 0, confirmed = 0
                for index in 0..<2_000 {
                    // Register 100 is not writable: refused at once with 0x02.
                    if connection.send(mbap([0x06, 0x00, 0x64, 0x00, 0x01])),
                       case .success(let answer) = connection.readAnswer(), answer.suffix(2) == [0x86, 0x02] {
                        refused += 1
                    }
                    if index % 200 == 0 {
                        // Allowed: the control source (304), DRED and by-value in turn.
                        let value: UInt8 = (index / 200) % 2 == 0 ? 1 : 3
                        if connection.send(mbap([0x06, 0x01, 0x30, 0x00, value])),
                           case .success(let answer) = connection.readAnswer(timeout: .seconds(10)), answer[7] == 0x06 {
                            confirmed += 1
                        }
                    }
                }
                return (refused, confirmed)
            }
            #expect(answers.refused == 2_000)
            #expect(answers.confirmed == 10)
            let refusedLines = log.messages.filter { $0.contains("control write refused") }
            #expect(refusedLines.count == 1, "one line, then a count: \(refusedLines.count) lines")
            #expect(log.messages.filter { $0.contains("control write") && $0.contains("outcome=confirmed") }.count == 10,
                    "every allowed write is audited")
            // When the window ends (the poller calls this every cycle), the count is written.
            harness.runtime.devices[0].control.logRefusalSummaries(now: .now + .seconds(61))
            #expect(log.contains("1999 more refused writes from 127.0.0.1 in the last 60 s"))
        }
    }

    @Test func garbageConnectionsAreLoggedOncePerAddress() async throws {
        let log = LogRecorder()
        try await BridgeHarness.run(logger: log.logger) { harness in
            let port = harness.port
            let closed = await offPool { () -> Int in
                (0..<200).filter { _ in
                    guard let connection = Connection(port: port) else { return false }
                    return connection.send(Array("GET / HTTP/1.1\r\n\r\n".utf8)) && connection.closedByServer(within: .seconds(3))
                }.count
            }
            #expect(closed == 200)
            #expect(harness.runtime.server.statistics.garbageClosed == 200)
            #expect(log.messages.filter { $0.contains("non-Modbus frame") }.count == 1)
        }
    }
}
