import Bridge
import Foundation
@testable import HTTPFace
import SEC1000Simulator
import Sockets
import TestSupport
import Testing

/// The renderings made for speed and memory say what the plain ones say.
@Suite("HTTP face rendering", .serialized, .timeLimit(.minutes(2)))
struct HTTPFaceRenderingTests {
    /// `/api/status` written device by device is the very document the whole report writes at
    /// once: one fresh device and one whose data went stale (no values).
    @Test func statusWrittenByDeviceEqualsTheWholeDocument() async throws {
        var hanging = SimulatorConfiguration()
        hanging.seed = 2
        try await FaceHarness.run(simulators: [SimulatorConfiguration(replayCapture: true), hanging]) { face in
            // Settings are read after a device's first good poll: both have them before unit 2 hangs.
            try await waitUntil("both devices' settings read") {
                face.face.server.source.states.allSatisfy { $0.current.control.settingsRead != nil }
            }
            face.bridge.devices[1].setFaults(FaultRates(hang: 1))
            try await waitUntil("unit 2 to go stale", timeout: .seconds(20)) { await face.get("/health").status == 503 }
            let source = face.face.server.source
            // Both read the live devices: a poll between the two changes counters and ages, so
            // they are taken again until no poll came between (a real difference never goes away).
            var bytes: [UInt8] = [], whole = ""
            for _ in 0..<50 {
                let now = ContinuousClock.now
                whole = StatusReport(source, now: now, unixNow: 1_796_000_000.25).json.text
                bytes = Array(StatusReport.render(source, now: now, unixNow: 1_796_000_000.25).readableBytesView)
                if bytes == Array(whole.utf8) { break }
            }
            #expect(String(decoding: bytes, as: UTF8.self) == whole)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
            let devices = try #require(json["devices"] as? [[String: Any]])
            #expect(devices.count == 2)
            #expect(devices[0]["values"] is [String: Any])
            #expect(devices[1]["values"] == nil, "a stale device has no values")
            // The fields Docs/http.md documents, with JSON types scripts can rely on.
            #expect(Set(json.keys) == ["version", "unixTime", "healthy", "modbus", "devices"])
            let fresh = devices[0]
            #expect(Set(fresh.keys) == [
                "unit", "address", "serialNumber", "intervalSeconds", "staleAfterSeconds", "fresh", "ageSeconds", "flags",
                "goodPolls", "failedPolls", "failuresByCode", "lastError", "values", "energy", "settings", "control", "registers",
            ])
            #expect(Set(devices[1].keys) == Set(fresh.keys).subtracting(["values", "energy"]))
            let values = try #require(fresh["values"] as? [String: Any])
            #expect((values["voltages"] as? [Double])?.count == 3)
            #expect(values["gridPower"] is Int)
            #expect((fresh["energy"] as? [String: Any])?["gridImportWh"] is Double)
            #expect((fresh["lastError"] as? [String: Any])?["meaning"] is String)
            let modbus = try #require(json["modbus"] as? [String: Any])
            #expect(modbus["requestsByFunction"] is [String: Any])
            let rows = try #require(fresh["registers"] as? [[String: Any]])
            #expect(rows.contains { $0["registers"] is [Int] && $0["value"] is Double })
            let staleRows = try #require(devices[1]["registers"] as? [[String: Any]])
            #expect(staleRows.contains { $0["exception"] as? Int == 11 && $0["registers"] == nil })
        }
    }

    /// A unit moved to another address by a reload keeps no series under its old `device` label,
    /// and a unit removed keeps none at all:
    /// the series of a unit are kept by unit, so a new address must replace them all.
    @Test func aUnitMovedByReloadHasOnlyItsNewLabels() async throws {
        try await FaceHarness.run(simulators: [SimulatorConfiguration(replayCapture: true), SimulatorConfiguration()]) { face in
            let old = "127.0.0.1:\(face.bridge.devices[0].port)"
            let new = "127.0.0.1:\(face.bridge.devices[1].port)"
            #expect(await face.get("/metrics").body.contains(#"sec1000_grid_power_watts{unit="1",device="\#(old)"}"#))
            var moved = face.bridge.runtime.configuration
            // Unit 2 goes (two devices on one address would need names of their own), unit 1 takes its address.
            moved.devices = [DeviceConfiguration(address: SocketAddress(host: "127.0.0.1", port: face.bridge.devices[1].port), unit: 1)]
            _ = try face.bridge.runtime.reload(moved)
            try await waitUntil("unit 1's values under its new address") {
                await face.get("/metrics").body.contains(#"sec1000_grid_power_watts{unit="1",device="\#(new)"}"#)
            }
            let metrics = await face.get("/metrics").body
            #expect(!metrics.contains(#"device="\#(old)""#), "no series keeps the old address")
            #expect(!metrics.contains(#"unit="2""#), "the removed unit has no series")
            #expect(metrics.contains(#"sec1000_device_polls_total{unit="1",device="\#(new)"}"#))
            #expect(metrics.contains(#"sec1000_phase_voltage_volts{unit="1",device="\#(new)",phase="L1"}"#))
        }
    }

    /// The `Date` header in RFC 9110's format, from the C library's calendar: the RFC's own
    /// example, the epoch, a leap day and a date past 2038.
    @Test func httpDatesAreIMFFixdates() {
        #expect(HTTPDate.format(unixSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(unixSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(unixSeconds: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(unixSeconds: 4_102_444_799) == "Thu, 31 Dec 2099 23:59:59 GMT")
    }

    /// Every answer carries the date, the server's name, its render time and no-store; HEAD
    /// answers the length of what GET would send, without the body.
    @Test func answersCarryDateServerAndHeadLengths() async throws {
        try await FaceHarness.run { face in
            let before = Int(Date().timeIntervalSince1970)
            let live = await face.get("/health/live")
            let after = Int(Date().timeIntervalSince1970)
            let head = live.head.lowercased()
            #expect(live.status == 200)
            #expect((before...after).contains { head.contains("date: " + HTTPDate.format(unixSeconds: $0).lowercased()) }, "\(live.head)")
            #expect(head.contains("server: sec1000"))
            #expect(head.contains("cache-control: no-store"))
            // `render;dur=` and milliseconds with three decimals, as the benchmark parses it.
            let timing = live.head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("server-timing: ") }
            let duration = try #require(timing?.split(separator: "=").last, "\(live.head)")
            #expect(timing?.lowercased().hasPrefix("server-timing: render;dur=") == true)
            #expect(duration.split(separator: ".").last?.count == 3)
            #expect(Double(duration).map { $0 >= 0 && $0 < 10_000 } == true, "\(duration)")
            let headAnswer = await httpRequest(port: face.port, "HEAD /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(headAnswer.status == 200)
            #expect(headAnswer.head.lowercased().contains("content-length: 3"), "\(headAnswer.head)")
            #expect(headAnswer.body.isEmpty)
            // An unknown path too: no body, and the length GET gets.
            let notFound = await httpRequest(port: face.port, "HEAD /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(notFound.status == 404)
            #expect(notFound.body.isEmpty, "\(notFound.body)")
            let getNotFound = await httpRequest(port: face.port, "GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(!getNotFound.body.isEmpty)
            #expect(notFound.head.lowercased().contains("content-length: \(getNotFound.body.utf8.count)"), "\(notFound.head)")
        }
    }
}
