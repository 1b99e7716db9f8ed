import Bridge
import Foundation
import HTTPFace
import Locking
import SEC1000Protocol
import SEC1000Simulator
import ServiceLifecycle
import Sockets
import Threading
import TestSupport
import Testing

/// A bridge with its HTTP face on an ephemeral loopback port.
struct FaceHarness: Sendable {
    let bridge: BridgeHarness
    let face: HTTPFaceRuntime
    let port: Int

    static func run(
        simulators: [SimulatorConfiguration] = [SimulatorConfiguration(replayCapture: true)],
        faceConfiguration: @escaping @Sendable (inout HTTPFaceConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (FaceHarness) async throws -> Void
    ) async throws {
        try await BridgeHarness.run(simulators: simulators) { bridge in
            let face = HTTPFaceRuntime(
                runtime: bridge.runtime, address: SocketAddress(host: "127.0.0.1", port: 0), logger: quietLogger,
                configure: faceConfiguration)
            let group = ServiceGroup(configuration: .init(services: face.services.map { .init(service: $0) }, logger: quietLogger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                do {
                    try await waitUntil("the HTTP face to listen") { face.server.port != nil }
                    try await body(FaceHarness(bridge: bridge, face: face, port: face.server.port!))
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

    func get(_ path: String) async -> HTTPAnswer { await httpRequest(port: port, "GET \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n") }
}

/// What an HTTP exchange returned; status 0 when the server closed without an answer.
struct HTTPAnswer: Sendable {
    var status: Int
    var head: String
    var body: String

    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] }
}

/// Sends `request` raw and reads the answer to the end of the connection.
func httpRequest(port: Int, _ request: String, timeout: Duration = .seconds(10)) async -> HTTPAnswer {
    await offPool {
        let deadline = ContinuousClock.now + timeout
        guard let stream = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: UInt16(port)), timeout: timeout),
              (try? stream.write(Array(request.utf8), deadline: deadline)) != nil
        else { return HTTPAnswer(status: 0, head: "", body: "") }
        var bytes: [UInt8] = []
        while let chunk = try? stream.read(upTo: 65536, deadline: deadline) { bytes += chunk }
        return parseHTTP(bytes)
    }
}

func parseHTTP(_ bytes: [UInt8]) -> HTTPAnswer {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { return HTTPAnswer(status: 0, head: text, body: "") }
    let head = String(text[..<split.lowerBound])
    let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return HTTPAnswer(status: status, head: head, body: String(text[split.upperBound...]))
}

/// A port nobody listens on now (for programs that take a port, not a port 0).
func freePort() throws -> Int {
    let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0))
    return Int(listener.port)
}

/// The grid power the simulator is made to report (import-positive, as the bridge serves it).
func fixedMeasurements(gridPower: Int32, inverters: Int32 = 2000) -> Measurements {
    Measurements(voltages: [2301, 2302, 2303], currents: [2001, 2002, 2003], powers: [gridPower, 0, 0], meterPower: gridPower, invertersPower: inverters)
}

@Suite("HTTP face", .serialized, .timeLimit(.minutes(3)))
struct HTTPFaceTests {
    /// Prometheus's own linter accepts the real exposition, and it carries the device's values.
    @Test func metricsPassPromtool() async throws {
        try await FaceHarness.run { face in
            face.bridge.device.setMeasurements(fixedMeasurements(gridPower: 1234))
            try await waitUntil("the new grid power") { face.bridge.state.current.sample?.reading.gridPower == 1234 }
            let metrics = await face.get("/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.head.contains("text/plain; version=0.0.4"))
            #expect(metrics.body.contains(#"sec1000_grid_power_watts{unit="1",device="127.0.0.1:"#))
            #expect(metrics.body.contains(#"sec1000_phase_voltage_volts{unit="1",device="127.0.0.1:\#(face.bridge.device.port)",phase="L1"} 230.1"#))
            #expect(metrics.body.contains("sec1000_build_info{version=\"\(bridgeVersion)\"} 1"))
            #expect(metrics.body.contains(#"sec1000_modbus_connections_open 0"#))
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-metrics-\(UUID().uuidString).txt")
            try Data(metrics.body.utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let check = try await runToEnd(["sh", "-c", "promtool check metrics < '\(file.path)'"])
            #expect(check.status == 0, "promtool: \(check.everything)")
        }
    }

    /// A real Prometheus scrapes the face every second; its query API returns the grid power,
    /// and the new value after the simulated device's power changes.
    @Test func prometheusScrapesGridPower() async throws {
        try await FaceHarness.run { face in
            face.bridge.device.setMeasurements(fixedMeasurements(gridPower: 1500))
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-prometheus-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let config = directory.appendingPathComponent("prometheus.yml")
            try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: sec1000
                static_configs:
                  - targets: ['127.0.0.1:\(face.port)']
            """.write(to: config, atomically: true, encoding: .utf8)
            let port = try freePort()
            let prometheus = Process()
            prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
            prometheus.arguments = [
                "--config.file=\(config.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ]
            prometheus.standardInput = FileHandle.nullDevice
            prometheus.standardOutput = FileHandle.nullDevice
            prometheus.standardError = FileHandle.nullDevice
            try prometheus.run()
            defer {
                prometheus.terminate()
                prometheus.waitUntilExit()
            }
            @Sendable func queried() async -> Double? {
                let answer = await httpRequest(
                    port: port, "GET /api/v1/query?query=sec1000_grid_power_watts HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                guard let data = answer.json?["data"] as? [String: Any], let result = (data["result"] as? [[String: Any]])?.first,
                      let value = result["value"] as? [Any], let text = value.last as? String else { return nil }
                return Double(text)
            }
            try await waitUntil("Prometheus to report 1500 W", timeout: .seconds(60)) { await queried() == 1500 }
            face.bridge.device.setMeasurements(fixedMeasurements(gridPower: -2750))
            try await waitUntil("Prometheus to report −2750 W", timeout: .seconds(30)) { await queried() == -2750 }
        }
    }

    /// /health answers 200 while the data are fresh, 503 with the device's error once the device
    /// stops answering and its data go stale, and 200 again when it answers; /health/live stays 200.
    @Test func healthFollowsStaleness() async throws {
        try await FaceHarness.run { face in
            let healthy = await face.get("/health")
            #expect(healthy.status == 200)
            let device = try #require((healthy.json?["devices"] as? [[String: Any]])?.first)
            #expect(device["fresh"] as? Bool == true)
            #expect(device["unit"] as? Int == 1)
            #expect(device["ageSeconds"] as? Double != nil)

            face.bridge.device.setFaults(FaultRates(hang: 1))
            try await waitUntil("/health to answer 503", timeout: .seconds(20)) { await face.get("/health").status == 503 }
            try await waitUntil("the timeout in /health") {
                ((await face.get("/health").json?["devices"] as? [[String: Any]])?.first?["lastError"] as? [String: Any])?["code"] as? Int == 1
            }
            let stale = await face.get("/health")
            #expect(stale.json?["healthy"] as? Bool == false)
            #expect((stale.json?["devices"] as? [[String: Any]])?.first?["fresh"] as? Bool == false)
            #expect(await face.get("/health/live").status == 200)
            let metrics = await face.get("/metrics").body
            #expect(!metrics.contains("sec1000_grid_power_watts{"), "a stale device's values are absent")
            #expect(metrics.contains(#"sec1000_device_up{unit="1",device="127.0.0.1:\#(face.bridge.device.port)"} 0"#))
            #expect(metrics.contains(#"sec1000_device_poll_failures_total{unit="1",device="127.0.0.1:\#(face.bridge.device.port)",error="timeout"}"#))

            face.bridge.device.setFaults(.none)
            try await waitUntil("/health to answer 200 again", timeout: .seconds(20)) { await face.get("/health").status == 200 }
        }
    }

    /// /api/status carries every device's values, flags, energy, control state and the register
    /// map, whose block A equals a Modbus read of it.
    @Test func statusJSONMatchesModbus() async throws {
        try await FaceHarness.run { face in
            face.bridge.device.setMeasurements(fixedMeasurements(gridPower: 777, inverters: 3210))
            try await waitUntil("the new grid power") { face.bridge.state.current.sample?.reading.gridPower == 777 }
            let client = try ModbusClient(port: face.bridge.port)
            let blockA = try #require(await offPool { client.read(0, 28) }.values)
            _ = await offPool { client.read(500, 1) }  // an exception (0x02), counted by code
            let status = await face.get("/api/status")
            #expect(status.status == 200)
            let json = try #require(status.json)
            #expect(json["healthy"] as? Bool == true)
            #expect(json["version"] as? String == bridgeVersion)
            let modbus = try #require(json["modbus"] as? [String: Any])
            #expect((modbus["requestsByFunction"] as? [String: Int])?["3"] ?? 0 >= 2)
            #expect((modbus["exceptionsByCode"] as? [String: Int])?["2"] ?? 0 >= 1)
            let device = try #require((json["devices"] as? [[String: Any]])?.first)
            #expect(device["address"] as? String == "127.0.0.1:\(face.bridge.device.port)")
            let values = try #require(device["values"] as? [String: Any])
            #expect(values["gridPower"] as? Int == 777)
            #expect(values["invertersPower"] as? Int == 3210)
            #expect(values["loadPower"] as? Int == 3987)
            #expect(values["voltages"] as? [Double] == [230.1, 230.2, 230.3])
            #expect(values["currents"] as? [Double] == [20.01, 20.02, 20.03])
            #expect((device["flags"] as? [String: Any])?["fresh"] as? Bool == true)
            #expect(device["energy"] as? [String: Any] != nil)
            #expect((device["control"] as? [String: Any])?["lastWriteResult"] != nil)
            let registers = try #require(device["registers"] as? [[String: Any]])
            var served: [UInt16] = []
            for row in registers where (row["address"] as? Int ?? 999) < 28 {
                served += (row["registers"] as? [Int] ?? []).map { UInt16($0) }
            }
            #expect(served == blockA)
            #expect(registers.contains { $0["address"] as? Int == 400 })
        }
    }

    /// Requests the face refuses: an unknown path (404), a method that would change something
    /// (405, with Allow), a 1 MB header (a 4xx and a closed connection, at once).
    @Test func badRequestsAreRefused() async throws {
        try await FaceHarness.run { face in
            #expect(await face.get("/nope").status == 404)
            let post = await httpRequest(port: face.port, "POST /api/status HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            #expect(post.status == 405)
            #expect(post.head.lowercased().contains("allow: get, head"))
            let huge = "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\n"
            let answer = await httpRequest(port: face.port, huge)
            #expect(answer.status == 0 || (400..<500).contains(answer.status), "got \(answer.status)")
            #expect(await face.get("/health/live").status == 200)
        }
    }

    /// Hostile clients at once: 200 idle connections, slow clients sending a header byte every
    /// 200 ms, 1 MB headers. Meanwhile every Modbus read is answered within libmodbus's timeout
    /// and polls go on; the slow clients are cut off by the head deadline, and the face serves
    /// again once they are gone. The Modbus latencies are logged, not asserted.
    @Test func hostileClientsLeaveModbusAndPollsOnTime() async throws {
        try await FaceHarness.run(faceConfiguration: { $0.headDeadline = .seconds(2) }) { face in
            let client = try ModbusClient(port: face.bridge.port)
            let baseline = await modbusLatencies(client, count: 20)
            #expect(baseline.failures == 0)
            let slowClosed = Locked(0)
            let attackers = (0..<4).map { index in
                BlockingThread {
                    // 50 idle connections each: they send nothing at all.
                    let idle = (0..<50).compactMap { _ in idleConnection(port: face.port) }
                    defer { idle.forEach { close($0) } }
                    // One slow client each: a header byte every 200 ms, until the server closes it (30 s at most).
                    if let slow = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: UInt16(face.port)), timeout: .seconds(5)) {
                        let header = Array("GET / HTTP/1.1\r\nX-Slow: ".utf8)
                        let end = ContinuousClock.now + .seconds(30)
                        var sent = 0
                        var closed = false
                        while !closed && ContinuousClock.now < end {
                            guard (try? slow.write([header[min(sent, header.count - 1)]], deadline: .now + .seconds(1))) != nil else {
                                closed = true
                                break
                            }
                            sent += 1
                            do { _ = try slow.read(upTo: 1, deadline: .now + .milliseconds(200)) } catch { closed = (error as? SocketError) != .timedOut }
                        }
                        if closed { slowClosed.withLock { $0 += 1 } }
                    }
                    // A 1 MB header on a fresh connection, twice.
                    for _ in 0..<2 where index < 2 {
                        guard let big = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: UInt16(face.port)), timeout: .seconds(5)) else { continue }
                        _ = try? big.write(Array(("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "b", count: 1 << 20)).utf8), deadline: .now + .seconds(5))
                    }
                }
            }
            let pollsBefore = face.bridge.state.current.goodPolls
            let during = await modbusLatencies(client, count: 60)
            attackers.forEach { $0.join() }
            #expect(during.failures == 0, "every Modbus read answered within libmodbus's 3 s timeout")
            #expect(face.bridge.state.current.goodPolls > pollsBefore, "polls went on")
            #expect(slowClosed.withLock { $0 } == 4, "the head deadline closed every slow client")
            try await waitUntil("the face to answer again", timeout: .seconds(30)) { await face.get("/health/live").status == 200 }
            print("Modbus read latency before: max \(baseline.maximum), during the attack: max \(during.maximum), median \(during.median)")
        }
    }

    /// Headless Chromium loads the page with every host but this one unreachable; after its
    /// script has run, the DOM shows the device's live values and a register table equal to a
    /// Modbus read.
    @Test func statusPageShowsLiveValuesInChromium() async throws {
        try await FaceHarness.run { face in
            face.bridge.device.setMeasurements(fixedMeasurements(gridPower: 4321, inverters: 1234))
            try await waitUntil("the new grid power") { face.bridge.state.current.sample?.reading.gridPower == 4321 }
            let client = try ModbusClient(port: face.bridge.port)
            let blockA = try #require(await offPool { client.read(0, 28) }.values)
            let page = await face.get("/")
            #expect(page.head.contains("Content-Security-Policy: default-src 'none'"))
            #expect(!page.body.contains("http://") && !page.body.contains("https://") && !page.body.contains("//cdn"), "no external address")
            let profile = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-chromium-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: profile) }
            let dom = try await runToEnd([
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=5000", "--dump-dom",
                "http://127.0.0.1:\(face.port)/",
            ], timeout: .seconds(90))
            #expect(dom.status == 0, "chromium: \(dom.errors.suffix(500))")
            #expect(dom.output.contains(#"id="d1-gridPower" data-raw="4321""#), "the grid power after the script ran")
            #expect(dom.output.contains(#"id="d1-invertersPower" data-raw="1234""#))
            #expect(dom.output.contains(#"id="d1-health">Fresh<"#))
            for address in stride(from: 0, to: 28, by: 2) {
                let expected = "\(blockA[address]),\(blockA[address + 1])"
                #expect(dom.output.contains(#"id="d1-reg-\#(address)" data-registers="\#(expected)""#), "register \(address)")
            }
        }
    }
}

/// A connected socket that never sends anything; the caller closes it.
func idleConnection(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let status = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard status == 0 else { close(fd); return nil }
    return fd
}

struct Latencies: Sendable {
    var failures = 0
    var samples: [Duration] = []
    var maximum: Duration { samples.max() ?? .zero }
    var median: Duration { samples.sorted()[samples.count / 2] }
}

/// `count` reads of block A, 50 ms apart, each timed.
func modbusLatencies(_ client: ModbusClient, count: Int) async -> Latencies {
    var result = Latencies()
    for _ in 0..<count {
        let start = ContinuousClock.now
        let outcome = await offPool { client.read(0, 28) }
        result.samples.append(ContinuousClock.now - start)
        if outcome.values == nil { result.failures += 1 }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return result
}
