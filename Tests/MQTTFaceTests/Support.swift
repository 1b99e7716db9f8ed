import Bridge
import Foundation
import Locking
import Logging
@testable import MQTTClient
import MQTTFace
import MQTTTestSupport
import SEC1000Client
import SEC1000Simulator
import ServiceLifecycle
import Sockets
import TestSupport
import Testing

let quietLogger = Logger(label: "mqtt-face-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(15), _ condition: @Sendable () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out after \(timeout) waiting for \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Everything a test client received, in order.
final class Received: Sendable {
    let messages = Locked<[MQTTMessage]>([])

    var all: [MQTTMessage] { messages.withLock { $0 } }
    func on(_ topic: String) -> [MQTTMessage] { all.filter { $0.topic == topic } }
    func last(_ topic: String) -> MQTTMessage? { on(topic).last }
    func json(_ topic: String) -> [String: Any]? {
        last(topic).flatMap { try? JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any] }
    }
    func clear() { messages.withLock { $0.removeAll() } }
}

/// A test client on `broker` (`url`), subscribed to `filters`, collecting into `received` until `body` ends.
func withSubscriber<T: Sendable>(
    _ url: String, _ filters: [String] = ["#"], id: String = "test-\(UInt32.random(in: 0...UInt32.max))",
    _ body: @Sendable (MQTTConnection, Received) async throws -> T
) async throws -> T {
    let client = try MQTTConnection(
        configuration: try MQTTConfiguration(
            url: url, clientID: id, reconnect: MQTTReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(300))),
        logger: quietLogger)
    let received = Received()
    let streams = try filters.map { try client.subscribe($0, bufferSize: 100_000) }
    client.start()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for stream in streams {
            group.addTask { for await message in stream { received.messages.withLock { $0.append(message) } } }
        }
        do {
            try await waitUntil("the test client to connect") { client.isConnected }
            let result = try await body(client, received)
            await client.shutdown(publishing: nil)
            group.cancelAll()
            return result
        } catch {
            await client.shutdown(publishing: nil)
            group.cancelAll()
            throw error
        }
    }
}

/// Simulated devices, a bridge and its MQTT face, run as `sec1000 bridge` runs them.
struct FaceHarness: Sendable {
    let devices: [SimulatedDevice]
    let runtime: BridgeRuntime
    let face: MQTTFace
    var device: SimulatedDevice { devices[0] }
    /// The first device's id (`<device>` in topics).
    var name: String { runtime.devices[0].device.effectiveName }

    static func configuration(devices: [DeviceConfiguration]) -> BridgeConfiguration {
        BridgeConfiguration(
            devices: devices, listen: SocketAddress(host: "127.0.0.1", port: 0), interval: .milliseconds(200),
            staleAfter: .seconds(2), timeouts: Timeouts(connect: .seconds(1), answer: .seconds(1)),
            retry: RetryPolicy(attempts: 1, wait: .zero), minimumGap: .zero, maxBackoff: .milliseconds(300))
    }

    static func run(
        broker url: String,
        simulators: [SimulatorConfiguration] = [SimulatorConfiguration(replayCapture: true)],
        logger: Logger = quietLogger,
        configure: (inout BridgeConfiguration) -> Void = { _ in },
        face configureFace: (inout MQTTFaceConfiguration) -> Void = { _ in },
        _ body: (FaceHarness) async throws -> Void
    ) async throws {
        var devices: [SimulatedDevice] = []
        defer { devices.forEach { $0.stop() } }
        for (index, var simulator) in simulators.enumerated() {
            simulator.listen = SocketAddress(host: "127.0.0.1", port: 0)
            simulator.seed = simulator.seed ?? UInt64(42 + index)
            simulator.hangLimit = .seconds(5)
            let device = try SimulatedDevice(configuration: simulator, logger: quietLogger)
            device.start()
            devices.append(device)
        }
        var configuration = Self.configuration(devices: devices.enumerated().map { index, device in
            DeviceConfiguration(
                address: SocketAddress(host: "127.0.0.1", port: device.port), unit: UInt8(index + 1), name: "dev\(index + 1)")
        })
        configure(&configuration)
        let runtime = try BridgeRuntime(configuration: configuration, logger: logger)
        var faceConfiguration = MQTTFaceConfiguration(
            connection: try MQTTConfiguration(
                url: url, clientID: "bridge-under-test",
                reconnect: MQTTReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(300))),
            tick: .milliseconds(50))
        configureFace(&faceConfiguration)
        let face = try MQTTFace(runtime: runtime, configuration: faceConfiguration, logger: logger)
        let harness = FaceHarness(devices: devices, runtime: runtime, face: face)
        let group = ServiceGroup(configuration: .init(
            services: (runtime.services + [face]).map { .init(service: $0) }, logger: quietLogger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(harness)
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

/// Keeps every log message with its metadata, for tests of the audit lines.
final class LogRecorder: Sendable {
    private let lines = Locked<[String]>([])

    var messages: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { messages.contains { $0.contains(text) } }

    var logger: Logger { Logger(label: "recorded") { _ in Handler(recorder: self) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let text = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            recorder.lines.withLock { $0.append("\(event.level) \(event.message) \(text)") }
        }
    }
}

/// One Modbus read of holding registers 0-1 over raw TCP: whether it was answered, and how long it took.
func modbusRead(port: UInt16) async -> (answered: Bool, latency: Duration) {
    await offPool {
        let start = ContinuousClock.now
        let deadline = start + .seconds(5)
        guard let stream = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: port), timeout: .seconds(5)) else {
            return (false, ContinuousClock.now - start)
        }
        // Transaction 1, protocol 0, length 6, unit 1, function 3, address 18, count 2.
        let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 18, 0, 2]
        guard (try? stream.write(request, deadline: deadline)) != nil else { return (false, ContinuousClock.now - start) }
        var answer: [UInt8] = []
        while answer.count < 13, let chunk = try? stream.read(upTo: 64, deadline: deadline), !chunk.isEmpty { answer += chunk }
        return (answer.count >= 13 && answer[7] == 3, ContinuousClock.now - start)
    }
}
