import Bridge
import Foundation
@testable import MQTTClient
import MQTTFace
import MQTTTestSupport
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// The topics and payloads of Docs/mqtt.md, against a real mosquitto.
@Suite(.serialized) struct TopicTests {
    @Test func statusAvailabilityStateAndSettings() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url) { _, received in
                try await FaceHarness.run(broker: broker.url) { bridge in
                    let name = bridge.name
                    try await waitUntil("status, availability, state and settings") {
                        received.last("sec1000/status")?.text == "online"
                            && received.last("sec1000/\(name)/availability")?.text == "online"
                            && received.last("sec1000/\(name)/state") != nil && received.last("sec1000/\(name)/settings") != nil
                    }
                    // The state: every field of `sec1000 read` under its name, and the derived values.
                    let state = try #require(received.json("sec1000/\(name)/state"))
                    for field in MeasurementField.all { #expect(state[field.key] is NSNumber, "\(field.key)") }
                    for key in ["grid_power_w", "import_power_w", "export_power_w", "inverters_power_w", "load_power_w",
                                "energy_import_wh", "energy_export_wh", "energy_production_wh", "data_age_s", "poll_time",
                                "good_polls", "failed_polls"] {
                        #expect(state[key] is NSNumber, "\(key)")
                    }
                    let grid = try #require(state["grid_power_w"] as? Int)
                    #expect(state["import_power_w"] as? Int == max(grid, 0))
                    #expect(state["export_power_w"] as? Int == max(-grid, 0))
                    #expect(abs((state["meters_power"] as? Double ?? .nan) * 1000 - Double(grid)) < 0.5)
                    let pollTime = try #require(state["poll_time"] as? Double)
                    #expect(abs(pollTime - Date().timeIntervalSince1970) < 30)
                    #expect(try #require(state["data_age_s"] as? Double) < 2)
                    // The settings as the simulator holds them; retained.
                    let settings = try #require(received.json("sec1000/\(name)/settings"))
                    let held = bridge.device.settings
                    #expect(settings["export_limit_w"] as? Int == Int(held.exportLimit))
                    #expect(settings["total_capacity_w"] as? Int == Int(held.totalCapacity))
                    #expect(settings["control_mode"] as? String == "by_value")
                    #expect(settings["age_s"] is NSNumber)
                    // A late subscriber gets the retained topics, and no state (not retained).
                    try await withSubscriber(broker.url, ["sec1000/#"]) { _, late in
                        try await waitUntil("the retained topics") {
                            late.last("sec1000/status")?.retain == true && late.last("sec1000/\(name)/availability")?.retain == true
                                && late.last("sec1000/\(name)/settings")?.retain == true
                        }
                        #expect(late.on("sec1000/\(name)/state").allSatisfy { !$0.retain })
                    }
                    // Stale data: availability goes offline when block A would answer 0x0B.
                    bridge.device.stop()
                    try await waitUntil("availability offline") { received.last("sec1000/\(name)/availability")?.text == "offline" }
                    let last = try #require(bridge.runtime.states[0].current.sample)
                    #expect(!bridge.runtime.states[0].isFresh(last, at: .now))
                }
                // A clean stop says offline (the final message, not the will).
                try await waitUntil("status offline after shutdown") { received.last("sec1000/status")?.text == "offline" }
            }
        }
    }

    @Test func neverReadDeviceIsOffline() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url) { _, received in
                var unreachable = SimulatorConfiguration(replayCapture: true)
                unreachable.unanswered = [.readMeasurements]
                try await FaceHarness.run(broker: broker.url, simulators: [unreachable]) { bridge in
                    try await waitUntil("availability") { received.last("sec1000/\(bridge.name)/availability") != nil }
                    #expect(received.last("sec1000/\(bridge.name)/availability")?.text == "offline")
                }
            }
        }
    }

    @Test func lastWillSaysOfflineAndReconnectSaysOnline() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url, ["sec1000/status"]) { _, received in
                try await FaceHarness.run(broker: broker.url) { bridge in
                    try await waitUntil("online") { received.last("sec1000/status")?.text == "online" }
                    received.clear()
                    bridge.face.connection.cutConnectionForTesting()
                    try await waitUntil("the will, then online again") {
                        let texts = received.all.map(\.text)
                        return texts.contains("offline") && texts.last == "online"
                    }
                }
            }
        }
    }

    @Test func brokerDownAtStartThenKilledAndRestarted() async throws {
        let broker = try MosquittoBroker()
        try await FaceHarness.run(broker: broker.url) { bridge in
            let name = bridge.name
            try await waitUntil("a good poll") { bridge.runtime.states[0].current.goodPolls > 0 }
            // Modbus is answered while the broker is down.
            #expect(await modbusRead(port: bridge.runtime.server.port).answered)
            try await broker.start()
            try await withSubscriber(broker.url) { _, received in
                try await waitUntil("state after the broker came up") {
                    received.last("sec1000/status")?.text == "online" && received.last("sec1000/\(name)/state") != nil
                        && received.last("homeassistant/sensor/sec1000_\(name)/grid_power/config") != nil
                }
            }
            await broker.kill()
            // Modbus answers while the broker is gone, measured.
            var latencies: [Duration] = []
            for _ in 0..<20 {
                let read = await modbusRead(port: bridge.runtime.server.port)
                #expect(read.answered)
                latencies.append(read.latency)
            }
            let worst = latencies.max() ?? .zero
            print("Modbus read latency with the broker killed: max \(worst), median \(latencies.sorted()[latencies.count / 2])")
            #expect(worst < .milliseconds(500))
            let goodPolls = bridge.runtime.states[0].current.goodPolls
            try await waitUntil("polls go on") { bridge.runtime.states[0].current.goodPolls > goodPolls + 2 }
            // Restarted without persistence: everything retained comes back, and the state resumes.
            try await broker.start()
            try await withSubscriber(broker.url) { _, received in
                try await waitUntil("state resumes after the restart") {
                    received.last("sec1000/status")?.text == "online" && received.on("sec1000/\(name)/state").count >= 2
                }
            }
            // A subscriber arriving now finds the retained topics the restarted broker had lost.
            try await withSubscriber(broker.url) { _, received in
                try await waitUntil("re-published retained topics after the restart") {
                    received.last("sec1000/status")?.retain == true
                        && received.last("sec1000/\(name)/availability")?.text == "online"
                        && received.last("sec1000/\(name)/availability")?.retain == true
                        && received.last("sec1000/\(name)/settings")?.retain == true
                        && received.last("homeassistant/sensor/sec1000_\(name)/grid_power/config")?.retain == true
                }
            }
        }
        await broker.kill()
    }

    @Test func homeAssistantOnlineResendsDiscovery() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url, ["homeassistant/#"]) { client, received in
                try await FaceHarness.run(broker: broker.url) { bridge in
                    let topic = "homeassistant/sensor/sec1000_\(bridge.name)/energy_import/config"
                    try await waitUntil("discovery") { received.last(topic) != nil }
                    try await Task.sleep(for: .milliseconds(300))
                    let before = received.on(topic).count
                    try client.publish(topic: "homeassistant/status", text: "online")
                    try await waitUntil("discovery again") { received.on(topic).count > before }
                    // Not on "offline".
                    let after = received.on(topic).count
                    try client.publish(topic: "homeassistant/status", text: "offline")
                    try await Task.sleep(for: .milliseconds(500))
                    #expect(received.on(topic).count == after)
                }
            }
        }
    }

    @Test func reloadAnnouncesAddedAndClearsRemovedDevices() async throws {
        try await MosquittoBroker.withBroker { broker in
            try await withSubscriber(broker.url) { _, received in
                try await FaceHarness.run(
                    broker: broker.url,
                    simulators: [SimulatorConfiguration(replayCapture: true), SimulatorConfiguration(replayCapture: true)]
                ) { bridge in
                    let config = "homeassistant/sensor/sec1000_dev2/grid_power/config"
                    try await waitUntil("both devices") {
                        received.last("homeassistant/sensor/sec1000_dev1/grid_power/config") != nil && received.last(config) != nil
                            && received.last("sec1000/dev2/availability")?.text == "online"
                    }
                    var configuration = bridge.runtime.configuration
                    let second = configuration.devices.removeLast()
                    _ = try bridge.runtime.reload(configuration)
                    try await waitUntil("dev2's discovery cleared") {
                        received.last(config)?.payload.isEmpty == true && received.last("sec1000/dev2/availability")?.payload.isEmpty == true
                    }
                    #expect(received.last("homeassistant/sensor/sec1000_dev1/grid_power/config")?.payload.isEmpty == false)
                    // Added back: announced again.
                    configuration.devices.append(second)
                    _ = try bridge.runtime.reload(configuration)
                    try await waitUntil("dev2 announced again") {
                        received.last(config)?.payload.isEmpty == false && received.last("sec1000/dev2/availability")?.text == "online"
                    }
                }
            }
        }
    }
}
