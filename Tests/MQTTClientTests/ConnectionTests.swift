import Foundation
import Locking
import Logging
import ServiceLifecycle
@testable import MQTTClient
import MQTTTestSupport
import TestSupport
import Testing

let quietLogger = Logger(label: "mqtt-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`.
func waitUntil(
    _ what: String, timeout: Duration = .seconds(15), _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(try await condition()) {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out after \(timeout) waiting for \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A connection to `broker` that retries fast, so tests need not wait for real back-offs.
func connection(
    to broker: MosquittoBroker, id: String, username: String? = nil, password: String? = nil,
    will: MQTTMessage? = nil, finalMessage: MQTTMessage? = nil,
    onConnect: (@Sendable (MQTTConnection) -> Void)? = nil
) throws -> MQTTConnection {
    let configuration = try MQTTConfiguration(
        url: broker.url, clientID: id, username: username, password: password, keepalive: 5, will: will,
        reconnect: MQTTReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(400)))
    return try MQTTConnection(configuration: configuration, logger: quietLogger, finalMessage: finalMessage, onConnect: onConnect)
}

/// Runs `body` while a child task collects what `stream` delivers.
func collecting<T: Sendable>(
    _ stream: AsyncStream<MQTTMessage>, _ body: @Sendable (Locked<[MQTTMessage]>) async throws -> T
) async throws -> T {
    let received = Locked<[MQTTMessage]>([])
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { for await message in stream { received.withLock { $0.append(message) } } }
        defer { group.cancelAll() }
        return try await body(received)
    }
}

/// The retained message on `topic`, as `mosquitto_sub` sees it (empty when there is none).
func retained(_ topic: String, on broker: MosquittoBroker) async throws -> String {
    // -W ends it after 1 s when nothing is retained; --retained-only ignores live messages.
    let result = try await broker.client("mosquitto_sub", ["-t", topic, "-C", "1", "-W", "1", "--retained-only"])
    return result.output.trimmingCharacters(in: .newlines)
}

@Suite(.serialized) struct ConnectionTests {
    @Test func publishesAndSubscribesThroughARealBroker() async throws {
        try await MosquittoBroker.withBroker { broker in
            let client = try connection(to: broker, id: "roundtrip")
            client.start()
            try await collecting(try client.subscribe("in/#", qos: .atLeastOnce)) { received in
                try await waitUntil("connected") { client.isConnected }
                // The SUBSCRIBE may still be on its way: publish until it arrives.
                try await waitUntil("a message from mosquitto_pub") {
                    _ = try await broker.client("mosquitto_pub", ["-t", "in/1", "-m", "hello", "-q", "1"])
                    return received.withLock { !$0.isEmpty }
                }
                let first = try #require(received.withLock { $0.first })
                #expect(first.topic == "in/1")
                #expect(first.text == "hello")
                #expect(!first.retain)
            }

            try client.publish(topic: "out/status", text: "online", qos: .atLeastOnce, retain: true)
            try await waitUntil("the retained message at the broker") { try await retained("out/status", on: broker) == "online" }

            // A new subscription gets the retained message, marked as such.
            try await collecting(try client.subscribe("out/#")) { received in
                try await waitUntil("the retained message") { received.withLock { !$0.isEmpty } }
                let message = try #require(received.withLock { $0.first })
                #expect(message.topic == "out/status" && message.text == "online" && message.retain)
            }
            await client.shutdown()
        }
    }

    @Test func lastWillFiresOnAnUncleanEndButNotOnShutdown() async throws {
        try await MosquittoBroker.withBroker { broker in
            let will = MQTTMessage(topic: "dev/status", payload: "offline (will)", qos: .atLeastOnce, retain: true)
            let client = try connection(to: broker, id: "will-client", will: will)
            client.start()
            try await waitUntil("connected") { client.isConnected }
            try client.publish(topic: "dev/status", text: "online", qos: .atLeastOnce, retain: true)
            try await waitUntil("online") { try await retained("dev/status", on: broker) == "online" }

            // The socket dies under the client, as in a crash or a cut cable: the broker sends the will.
            client.cutConnectionForTesting()
            try await waitUntil("the last will") { try await retained("dev/status", on: broker) == "offline (will)" }
            await client.shutdown()

            // A clean shutdown with a final message: the broker keeps the final message, no will follows.
            let clean = try connection(
                to: broker, id: "clean-client", will: will,
                finalMessage: MQTTMessage(topic: "dev/status", payload: "offline (clean)", qos: .atLeastOnce, retain: true))
            clean.start()
            try await waitUntil("connected") { clean.isConnected }
            try clean.publish(topic: "dev/status", text: "online again", qos: .atLeastOnce, retain: true)
            try await waitUntil("online again") { try await retained("dev/status", on: broker) == "online again" }
            await clean.shutdown()
            #expect(clean.state == .shutDown)
            // Either way it goes (DISCONNECT or a closed socket), then the retained message tells which.
            try await waitUntil("the broker to see the client go") {
                let log = broker.log()
                return log.contains("Client clean-client disconnected.") || log.contains("Client clean-client closed its connection.")
            }
            #expect(try await retained("dev/status", on: broker) == "offline (clean)")
        }
    }

    @Test func brokerDownAtStartThenUpGetsOnlyTheLatestValue() async throws {
        let broker = try MosquittoBroker()
        let client = try connection(to: broker, id: "late-broker")
        client.start()
        for value in 1...100 {
            try client.publish(topic: "outage/value", text: "\(value)", qos: .atLeastOnce, retain: true)
        }
        try await waitUntil("a failed attempt") {
            if case .disconnected(.unreachable) = client.state { true } else { false }
        }
        #expect(client.statistics.outboxTopics == 1)
        #expect(client.statistics.replacedInOutbox == 99)

        try await broker.start()
        try await waitUntil("connected after the broker came up") { client.isConnected }
        // A marker published after the connection: once the broker has it, the outbox went before it.
        try client.publish(topic: "outage/marker", text: "after", qos: .atLeastOnce)
        try await waitUntil("the marker") { broker.publishesReceived(from: "late-broker", topic: "outage/marker") == 1 }
        #expect(broker.publishesReceived(from: "late-broker", topic: "outage/value") == 1)
        #expect(try await retained("outage/value", on: broker) == "100")
        await client.shutdown()
        await broker.kill()
    }

    @Test func brokerRestartReconnectsResubscribesAndCallsTheHook() async throws {
        let broker = try MosquittoBroker()
        try await broker.start()
        let connects = Locked(0)
        let client = try connection(to: broker, id: "survivor") { connection in
            connects.withLock { $0 += 1 }
            try? connection.publish(topic: "svc/status", text: "online", qos: .atLeastOnce, retain: true)
        }
        client.start()
        let states = Locked<[MQTTConnectionState]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { for await state in client.stateChanges() { states.withLock { $0.append(state) } } }
            defer { group.cancelAll() }
            try await collecting(try client.subscribe("cmd/#")) { received in
                try await waitUntil("connected") { client.isConnected }
                #expect(connects.withLock { $0 } == 1)
                try await waitUntil("the hook's status") { try await retained("svc/status", on: broker) == "online" }

                await broker.kill()
                // Counted, not read off the state: after 0.5 s the state moves on to the first failed
                // reconnect, and a loaded machine can poll past that moment.
                try await waitUntil("the loss noticed") { client.statistics.connectionLosses >= 1 }
                for value in 1...50 {
                    try client.publish(topic: "svc/value", text: "\(value)", qos: .atLeastOnce, retain: true)
                }
                #expect(client.statistics.outboxTopics == 1)

                // Persistence is off: the restarted broker knows nothing until the client tells it again.
                try await broker.start()
                try await waitUntil("reconnected") { client.isConnected && connects.withLock { $0 } == 2 }
                try await waitUntil("the hook's status again") { try await retained("svc/status", on: broker) == "online" }
                try await waitUntil("the latest value") { try await retained("svc/value", on: broker) == "50" }
                #expect(broker.publishesReceived(from: "survivor", topic: "svc/value") == 1)

                try await waitUntil("a command through the renewed subscription") {
                    _ = try await broker.client("mosquitto_pub", ["-t", "cmd/set", "-m", "42"])
                    return received.withLock { $0.contains { $0.topic == "cmd/set" && $0.text == "42" } }
                }
            }
        }
        let seen = states.withLock { $0 }
        #expect(seen.filter { $0 == .connected }.count == 2)
        #expect(seen.contains { if case .disconnected(.lost) = $0 { true } else { false } })
        #expect(client.statistics.connects == 2)
        #expect(client.statistics.connectionLosses == 1)
        await client.shutdown()
        await broker.kill()
    }

    @Test func aBacklogLargerThanTheHandOverLimitArrivesWholeAndInOrder() async throws {
        // mosquitto drops QoS 1 messages beyond 1,000 queued for a slow subscriber by default.
        let broker = try MosquittoBroker(extraConfiguration: ["max_queued_messages 0"])
        try await broker.start()
        do {
            // As discovery for many devices: retained configs published by the connect hook, all
            // waiting in the outbox when the connection is accepted.
            let configs = MQTTConnection.handOverLimit * 12
            let sequence = MQTTConnection.handOverLimit * 3
            let filler = String(repeating: "x", count: 400)
            let reader = try connection(to: broker, id: "backlog-reader")
            reader.start()
            let stream = try reader.subscribe("backlog/#", qos: .atLeastOnce, bufferSize: configs + sequence + 100)
            try await collecting(stream) { received in
                try await waitUntil("the reader connected") { reader.isConnected }
                try await waitUntil("the reader's subscription") {
                    _ = try await broker.client("mosquitto_pub", ["-t", "backlog/probe", "-m", "probe", "-q", "1"])
                    return received.withLock { $0.contains { $0.topic == "backlog/probe" } }
                }
                let writer = try connection(to: broker, id: "backlog-writer") { connection in
                    for index in 0..<configs {
                        try? connection.publish(
                            topic: "backlog/device-\(index)/config", text: "{\"index\":\(index),\"pad\":\"\(filler)\"}",
                            qos: .atLeastOnce, retain: true)
                    }
                }
                writer.start()
                try await waitUntil("the writer connected") { writer.isConnected }
                // Behind the backlog, in the queue: one topic whose values must keep their order.
                for value in 1...sequence {
                    try writer.publish(topic: "backlog/sequence", text: "\(value)", qos: .atLeastOnce)
                }
                try await waitUntil("every message at the reader", timeout: .seconds(60)) {
                    received.withLock { $0.count } >= 1 + configs + sequence
                }
                let messages = received.withLock { $0 }
                let configIndices = Set(messages.compactMap { message -> Int? in
                    guard message.topic.hasSuffix("/config") else { return nil }
                    return Int(message.topic.dropFirst("backlog/device-".count).dropLast("/config".count))
                })
                #expect(configIndices == Set(0..<configs))
                #expect(messages.filter { $0.topic == "backlog/sequence" }.map(\.text) == (1...sequence).map { "\($0)" })
                // The sequence was published after the connection: it went out behind the backlog.
                let firstSequence = try #require(messages.firstIndex { $0.topic == "backlog/sequence" })
                let lastConfig = try #require(messages.lastIndex { $0.topic.hasSuffix("/config") })
                #expect(lastConfig < firstSequence)

                try await waitUntil("every message confirmed") { writer.statistics.unconfirmed == 0 }
                let statistics = writer.statistics
                #expect(statistics.published == configs + sequence)
                // Never more than the limit in libmosquitto's hands at once, yet the limit was reached.
                #expect(statistics.unconfirmedHighWater <= MQTTConnection.handOverLimit)
                #expect(statistics.unconfirmedHighWater >= MQTTConnection.handOverLimit / 2)
                // A backlog that large is followed by one trim of the heap, once it is all sent.
                try await waitUntil("the heap trimmed after the backlog") { writer.statistics.trims == 1 }
                await writer.shutdown()
            }
            await reader.shutdown()
        } catch {
            await broker.kill()
            throw error
        }
        await broker.kill()
    }

    @Test func reportsRefusedCredentialsClearly() async throws {
        try await MosquittoBroker.withBroker(users: ["alice": "right-password"]) { broker in
            let wrong = try connection(to: broker, id: "wrong-password", username: "alice", password: "wrong-password")
            wrong.start()
            try await waitUntil("a refusal") {
                if case .disconnected(.refused) = wrong.state { true } else { false }
            }
            guard case .disconnected(.refused(let refusal)) = wrong.state else { return }
            #expect(refusal == .notAuthorized || refusal == .badUsernameOrPassword)
            #expect(wrong.state.description.contains("connection refused"))
            #expect(!wrong.isConnected)
            await wrong.shutdown()

            let anonymous = try connection(to: broker, id: "anonymous")
            anonymous.start()
            try await waitUntil("a refusal") {
                if case .disconnected(.refused) = anonymous.state { true } else { false }
            }
            await anonymous.shutdown()

            let right = try connection(to: broker, id: "right-password", username: "alice", password: "right-password")
            right.start()
            try await waitUntil("connected") { right.isConnected }
            await right.shutdown()
        }
    }

    @Test func aSlowSubscriberKeepsOnlyTheNewestMessages() async throws {
        try await MosquittoBroker.withBroker { broker in
            let reader = try connection(to: broker, id: "slow-reader")
            let writer = try connection(to: broker, id: "fast-writer")
            reader.start()
            writer.start()
            let stream = try reader.subscribe("flood", qos: .atLeastOnce, bufferSize: 4)
            try await waitUntil("both connected") { reader.isConnected && writer.isConnected }
            // Until the SUBSCRIBE is through, messages may pass unseen: probe until one is received.
            try await waitUntil("the subscription") {
                try writer.publish(topic: "flood", text: "probe", qos: .atLeastOnce)
                return reader.statistics.received > 0
            }
            let before = reader.statistics.received
            for value in 1...40 { try writer.publish(topic: "flood", text: "\(value)", qos: .atLeastOnce) }
            try await waitUntil("all 40 received") { reader.statistics.received >= before + 40 }
            #expect(reader.statistics.droppedIncoming >= 36)
            // The buffer holds the newest 4, so these four `next()` calls return at once.
            var iterator = stream.makeAsyncIterator()
            var last: [String] = []
            for _ in 0..<4 { last.append(await iterator.next()?.text ?? "(end)") }
            #expect(last == ["37", "38", "39", "40"])
            await reader.shutdown()
            await writer.shutdown()
        }
    }

    @Test func shutdownIsIdempotentAndEndsTheStreams() async throws {
        let broker = try MosquittoBroker()
        let neverStarted = try connection(to: broker, id: "never")
        await neverStarted.shutdown()
        #expect(neverStarted.state == .shutDown)

        let client = try connection(to: broker, id: "twice")
        client.start()
        let stream = try client.subscribe("x")
        async let first: Void = client.shutdown()
        async let second: Void = client.shutdown()
        _ = await (first, second)
        await client.shutdown()
        #expect(client.state == .shutDown)
        for await _ in stream { Issue.record("a message after shutdown") }
        #expect(throws: MQTTError.shutDown) { try client.publish(topic: "x", text: "late") }
        #expect(throws: MQTTError.shutDown) { _ = try client.subscribe("x") }
        var ended = false
        for await state in client.stateChanges() { ended = state == .shutDown }
        #expect(ended)
    }

    @Test func asAServiceItShutsDownCleanlyWhenCancelled() async throws {
        try await MosquittoBroker.withBroker { broker in
            let client = try connection(
                to: broker, id: "service", will: MQTTMessage(topic: "svc/state", payload: "will", retain: true),
                finalMessage: MQTTMessage(topic: "svc/state", payload: "bye", retain: true))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.run() }
                try await waitUntil("connected") { client.isConnected }
                group.cancelAll()
                try await group.waitForAll()
            }
            #expect(client.state == .shutDown)
            #expect(try await retained("svc/state", on: broker) == "bye")
        }
    }

    @Test func refusesBadTopicsAndFilters() async throws {
        let broker = try MosquittoBroker()
        let client = try connection(to: broker, id: "checks")
        #expect(throws: MQTTError.self) { try client.publish(topic: "a/+/b", text: "x") }
        #expect(throws: MQTTError.self) { try client.publish(topic: "", text: "x") }
        #expect(throws: MQTTError.self) { _ = try client.subscribe("a/b#") }
        await client.shutdown()
    }
}
