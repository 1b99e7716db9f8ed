import Foundation
import MQTTTestSupport
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct ExecutableTests {
    @Test func mqttControlWithoutAuthenticationRefusesToStart() async throws {
        let base = ["bridge", "--simulate", "--listen", "127.0.0.1:0", "--mqtt", "mqtt://127.0.0.1:1", "--enable-control", "--mqtt-control"]
        let refused = try await runSEC1000(base)
        #expect(refused.status == 64)
        #expect(refused.errors.contains("--mqtt-control-unauthenticated"), "\(refused.errors)")
        let withoutControl = try await runSEC1000(["bridge", "--simulate", "--listen", "127.0.0.1:0", "--mqtt", "mqtt://127.0.0.1:1", "--mqtt-control"])
        #expect(withoutControl.status == 64)
        #expect(withoutControl.errors.contains("--enable-control"), "\(withoutControl.errors)")
        let noBroker = try await runSEC1000(["bridge", "--simulate", "--listen", "127.0.0.1:0", "--mqtt-prefix", "x"])
        #expect(noBroker.status == 64)
        #expect(noBroker.errors.contains("need --mqtt"), "\(noBroker.errors)")
        let badPrefix = try await runSEC1000(["bridge", "--simulate", "--listen", "127.0.0.1:0", "--mqtt", "mqtt://127.0.0.1:1", "--mqtt-prefix", "a/#"])
        #expect(badPrefix.status == 64)
        #expect(badPrefix.errors.contains("wildcard"), "\(badPrefix.errors)")
    }
}

/// Many sites: each bridge publishes to its site broker, which forwards (a mosquitto bridge, QoS 1,
/// persistent session, topics remapped under `sites/<site>/`) to a central broker.
@Suite(.serialized) struct FleetTests {
    @Test func theCentreSeesEverySiteAlsoAfterItRestarts() async throws {
        let central = try MosquittoBroker()
        try await central.start()
        var sites: [MosquittoBroker] = []
        var bridges: [Process] = []
        defer {
            for bridge in bridges where bridge.isRunning { kill(bridge.processIdentifier, SIGKILL) }
        }
        for site in ["north", "south"] {
            let broker = try MosquittoBroker(extraConfiguration: [
                "connection central-\(site)",
                "address 127.0.0.1:\(central.port)",
                "clientid site-\(site)",
                "cleansession false",
                "restart_timeout 1 2",
                "keepalive_interval 5",
                "topic sec1000/# out 1 \"\" sites/\(site)/",
            ])
            try await broker.start()
            sites.append(broker)
            let process = Process()
            process.executableURL = try sec1000Executable()
            process.arguments = [
                "bridge", "--simulate", "--listen", "127.0.0.1:0", "--interval", "0.5", "--log-level", "warning",
                "--mqtt", broker.url, "--mqtt-client-id", "bridge-\(site)", "--no-ha-discovery",
            ]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try await launchUnmasked(process)
            bridges.append(process)
        }
        @Sendable func seesEverySite(_ received: Received) -> Bool {
            ["north", "south"].allSatisfy { site in
                received.last("sites/\(site)/sec1000/SEC1000-SIMULATED/availability")?.text == "online"
                    && received.last("sites/\(site)/sec1000/status")?.text == "online"
                    && received.json("sites/\(site)/sec1000/SEC1000-SIMULATED/state")?["grid_power_w"] != nil
            }
        }
        try await withSubscriber(central.url, ["sites/#"]) { _, received in
            try await waitUntil("every site's state and availability at the centre", timeout: .seconds(30)) { seesEverySite(received) }
        }
        // The central broker restarts (without persistence: it forgets everything).
        await central.kill()
        try await Task.sleep(for: .seconds(1))
        try await central.start()
        try await withSubscriber(central.url, ["sites/#"]) { _, received in
            try await waitUntil("every site again after the centre restarted", timeout: .seconds(30)) { seesEverySite(received) }
        }
        for bridge in bridges { kill(bridge.processIdentifier, SIGTERM) }
        for bridge in bridges { await offPool { bridge.waitUntilExit() } }
        // A bridge that stops cleanly says offline, and the centre hears it.
        try await withSubscriber(central.url, ["sites/+/sec1000/status"]) { _, received in
            try await waitUntil("offline from both sites") {
                received.last("sites/north/sec1000/status")?.text == "offline" && received.last("sites/south/sec1000/status")?.text == "offline"
            }
        }
        for site in sites { await site.kill() }
        await central.kill()
    }
}
