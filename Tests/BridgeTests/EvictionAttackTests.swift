import Bridge
import TestSupport
import Testing

extension Reliability {
    /// Issue 14, defect 2, measured: a master reading every 100 ms while an attacker opens 8 idle
    /// connections every 100 ms against `--max-connections 8`. Before the fix the master got 1
    /// answer in 50; every connection it made was the longest idle for the next batch.
    @Suite("Eviction attack", .timeLimit(.minutes(5)))
    struct EvictionAttackTests {
        static let reads = 50

        @Test func theMasterKeepsItsConnectionUnderAnIdleConnectionFlood() async throws {
            let log = LogRecorder()
            try await BridgeHarness.run(logger: log.logger, configure: {
                $0.interval = .seconds(1)
                $0.staleAfter = .seconds(3600)
                $0.maxConnections = 8
            }) { harness in
                let port = harness.port
                let stop = StopFlag()
                async let attack = offPool { () -> Int in
                    lowerThreadPriority()
                    var held: [[Connection]] = []
                    var opened = 0
                    while !stop.isRaised {
                        let batch = (0..<8).compactMap { _ in Connection(port: port, timeout: .milliseconds(500)) }
                        opened += batch.count
                        held.append(batch)
                        // The last two batches stay open; older ones are let go.
                        if held.count > 2 { held.removeFirst() }
                        pace(.milliseconds(100))
                    }
                    return opened
                }
                let (answered, reconnects) = await offPool { () -> (Int, Int) in
                    guard var client = try? ModbusClient(port: port) else { return (0, 0) }
                    var answered = 0, reconnects = 0
                    for _ in 0..<Self.reads {
                        pace(.milliseconds(100))
                        if client.read(0, 28).values != nil {
                            answered += 1
                        } else if let fresh = try? ModbusClient(port: port) {
                            // A real master reconnects after a failure.
                            client = fresh
                            reconnects += 1
                        }
                    }
                    return (answered, reconnects)
                }
                stop.raise()
                let opened = await attack
                let statistics = harness.runtime.server.statistics
                let limitLines = log.messages.filter { $0.contains("connection limit") }.count
                print("[eviction attack] \(ReliabilityEnvironment.build): master answered \(answered) of \(Self.reads) reads (\(reconnects) reconnects); attacker opened \(opened) connections; server evicted \(statistics.evicted), refused \(statistics.refused); \(limitLines) log lines about the limit")
                #expect(opened >= 8 * Self.reads / 2, "the attack ran")
                #expect(answered >= Self.reads - 1, "master answered \(answered) of \(Self.reads)")
                #expect(limitLines <= 3, "evictions are logged once per address, then counted")
            }
        }
    }
}
