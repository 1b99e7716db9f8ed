import Foundation
@testable import HTTPFace
import SEC1000Simulator
import TestSupport
import Testing

/// The renderings made for speed and memory say what the plain ones say.
@Suite("HTTP face rendering", .serialized, .timeLimit(.minutes(2)))
struct HTTPFaceRenderingTests {
    /// `/api/status` encoded device by device is the very document JSONEncoder makes of the whole
    /// report with sorted keys: one fresh device and one whose data went stale (no values).
    @Test func statusEncodedByDeviceEqualsTheWholeEncoding() async throws {
        var hanging = SimulatorConfiguration()
        hanging.seed = 2
        try await FaceHarness.run(simulators: [SimulatorConfiguration(replayCapture: true), hanging]) { face in
            face.bridge.devices[1].setFaults(FaultRates(hang: 1))
            try await waitUntil("unit 2 to go stale", timeout: .seconds(20)) { await face.get("/health").status == 503 }
            let source = face.face.server.source
            let now = ContinuousClock.now
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let whole = try encoder.encode(StatusReport(source, now: now, unixNow: 1_796_000_000.25))
            let rendered = StatusReport.render(source, now: now, unixNow: 1_796_000_000.25)
            let bytes = Array(rendered.readableBytesView)
            #expect(String(decoding: bytes, as: UTF8.self) == String(decoding: whole, as: UTF8.self))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
            let devices = try #require(json["devices"] as? [[String: Any]])
            #expect(devices.count == 2)
            #expect(devices[0]["values"] is [String: Any])
            #expect(devices[1]["values"] == nil, "a stale device has no values")
        }
    }
}
