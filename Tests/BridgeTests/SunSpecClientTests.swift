import Bridge
import Foundation
import SunSpec
import TestSupport
import Testing

/// The repository's root, from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A Python that can import pysunspec2, as the command that starts it: the project's
/// `.venv-tests/` (where `scripts/install-dependencies.sh` puts it) first, then `python3` on PATH.
func pythonWithSunSpec() async -> [String]? {
    let candidates = [[repositoryRoot.appendingPathComponent(".venv-tests/bin/python3").path], ["/usr/bin/env", "python3"]]
    for command in candidates where FileManager.default.isExecutableFile(atPath: command[0]) {
        if (try? await runToEnd(command + ["-c", "import sunspec2"], timeout: .seconds(30)))?.status == 0 { return command }
    }
    return nil
}

/// pysunspec2, the SunSpec Alliance's own Python client, scans the bridge as an energy manager would.
@Suite("A real SunSpec client: pysunspec2", .timeLimit(.minutes(2)))
struct SunSpecClientTests {
    @Test func pysunspec2FindsTheModelsAndDecodesTheCapture() async throws {
        let python = try #require(await pythonWithSunSpec(), "pysunspec2 is installed by scripts/install-dependencies.sh (make test)")
        let script = repositoryRoot.appendingPathComponent("Tests/Scripts/sunspec_scan.py").path
        try await BridgeHarness.run(configure: {
            $0.energy.alignments = [1: [.gridImport: 123_456, .gridExport: 7_890, .production: 5_000]]
        }) { harness in
            let scan = try await runToEnd(python + [script, "\(harness.port)", "1"], timeout: .seconds(60))
            try #require(scan.status == 0, "the scan failed: \(scan.errors)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(scan.output.utf8)) as? [String: Any])

            #expect(json["base_address"] as? Int == 40000)
            #expect(json["models"] as? [Int] == [1, 103, 203])
            let errorsByModel = try #require(json["errors"] as? [String: String])
            #expect(errorsByModel.values.allSatisfy { $0.isEmpty }, "\(errorsByModel)")
            let points = try #require(json["points"] as? [String: [String: Any]])

            let common = try #require(points["1"])
            #expect(common["Mn"] as? String == "GoodWe")
            #expect(common["Md"] as? String == "SEC1000")
            #expect(common["Opt"] as? String == "sec1000 bridge")
            #expect(common["Vr"] as? String == bridgeVersion)
            #expect(common["SN"] as? String == "SEC1000-127.0.0.1-\(harness.device.port)")
            #expect(common["DA"] as? Int == 1)

            // The capture: v 241.0/240.4/240.9 V, i 4.80/3.90/5.08 A, p 295/-114/-532 W, grid -351 W,
            // inverters 3386 W; pysunspec2 applies the scale factors.
            func number(_ model: [String: Any], _ name: String) -> Double? { (model[name] as? NSNumber)?.doubleValue }
            func close(_ value: Double?, _ expected: Double) -> Bool { value.map { abs($0 - expected) < 1e-9 } ?? false }
            let inverter = try #require(points["103"])
            #expect(number(inverter, "W") == 3386)
            #expect(number(inverter, "St") == 4)
            let produced = try #require(number(inverter, "WH"))
            #expect(produced >= 5000 && produced < 5100)
            for name in ["A", "AphA", "PhVphA", "PPVphAB", "Hz", "VA", "VAr", "PF", "DCA", "DCV", "DCW", "TmpCab", "StVnd", "Evt1", "EvtVnd4"] {
                #expect(inverter[name] is NSNull, "103 \(name) is not implemented: \(String(describing: inverter[name]))")
            }

            let meter = try #require(points["203"])
            let expected: [(String, Double)] = [
                ("A", 13.78), ("AphA", 4.8), ("AphB", 3.9), ("AphC", 5.08),
                ("PhV", 240.8), ("PhVphA", 241.0), ("PhVphB", 240.4), ("PhVphC", 240.9),
                ("W", -351), ("WphA", 295), ("WphB", -114), ("WphC", -532), ("TotWhImp", 123_456),
            ]
            for (name, value) in expected {
                #expect(close(number(meter, name), value), "203 \(name): \(String(describing: meter[name])), expected \(value)")
            }
            let exported = try #require(number(meter, "TotWhExp"))
            #expect(exported >= 7890 && exported < 7900)
            for name in ["PPV", "PhVphAB", "Hz", "VA", "VAphA", "VAR", "PF", "TotWhExpPhA", "TotWhImpPhC", "TotVAhExp", "TotVArhImpQ1", "Evt"] {
                #expect(meter[name] is NSNull, "203 \(name) is not implemented: \(String(describing: meter[name]))")
            }

            // The installed package's own definitions agree with the layouts the bridge encodes with.
            let definitions = try #require(json["definitions"] as? [String: [[Any]]])
            for (id, layout) in [("1", ModelLayout.common), ("103", .inverterThreePhase), ("203", .meterWye)] {
                let theirs: [String] = try #require(definitions[id]).map { point in "\(point[0]):\(point[1]):\(point[2])" }
                let ours: [String] = layout.points.map { point in "\(point.name):\(point.type.rawValue):\(point.size)" }
                #expect(theirs == ours, "model \(id)")
            }
        }
    }
}
