import Bridge
import Foundation
import Testing

/// A fresh directory under the system's temporary directory, removed after `body`.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

@Suite("Energy integration")
struct EnergyIntegrationTests {
    /// Polls 225 s apart (1/16 h) keep every expected value exact in binary floating point.
    @Test func aScriptedSequenceGivesExactWh() {
        let t0 = ContinuousClock.now
        var integrator = EnergyIntegrator(maximumGap: .seconds(300))
        let script: [(seconds: Int64, grid: Int32, production: Int32)] = [
            (0, 1600, 0),
            (225, 1600, 3200),      // import 1600 W for 1/16 h: 100 Wh; production 0 → 3200 W: 100 Wh
            (450, -1600, 3200),     // crosses zero halfway: 25 Wh import, 25 Wh export; production 200 Wh
            (675, -4800, 0),        // export (1600 + 4800) / 2 W: 200 Wh; production 100 Wh
            (976, -4800, 0),        // 301 s later, past the 300 s limit: nothing
            (1201, -4800, -40),     // export 300 Wh; a negative inverters power counts as 0
        ]
        for step in script {
            integrator.add(gridPower: step.grid, productionPower: step.production, at: t0 + .seconds(step.seconds))
        }
        #expect(integrator.counters == EnergyCounters(gridImport: 125, gridExport: 525, production: 400))
    }

    @Test func aGapExactlyAtTheLimitStillCounts() {
        let t0 = ContinuousClock.now
        var integrator = EnergyIntegrator(counters: EnergyCounters(gridImport: 10), maximumGap: .seconds(225))
        integrator.add(gridPower: 800, productionPower: 0, at: t0)
        integrator.add(gridPower: 800, productionPower: 0, at: t0 + .seconds(225))
        #expect(integrator.counters.gridImport == 60)
    }

    @Test func theFirstPollAndRepeatedInstantsAddNothing() {
        let t0 = ContinuousClock.now
        var integrator = EnergyIntegrator(counters: EnergyCounters(gridImport: 1, gridExport: 2, production: 3), maximumGap: .seconds(30))
        integrator.add(gridPower: 5000, productionPower: 5000, at: t0)
        integrator.add(gridPower: 5000, productionPower: 5000, at: t0)
        integrator.add(gridPower: 5000, productionPower: 5000, at: t0 - .seconds(1))
        #expect(integrator.counters == EnergyCounters(gridImport: 1, gridExport: 2, production: 3))
    }

    @Test func servedValuesAreWholeWhRoundedDown() {
        let counters = EnergyCounters(gridImport: 12.999, gridExport: 0.5, production: Double(1 << 40) + 5.75)
        #expect(counters.wholeWh(.gridImport) == 12)
        #expect(counters.wholeWh(.gridExport) == 0)
        #expect(counters.wholeWh(.production) == (1 << 40) + 5)
    }
}

@Suite("The energy state file")
struct EnergyStateFileTests {
    let records: [UInt8: EnergyRecord] = [
        1: EnergyRecord(counters: EnergyCounters(gridImport: 1234.5, gridExport: 0.1, production: 98765.125), applied: [.gridImport: 1000]),
        7: EnergyRecord(counters: EnergyCounters(gridImport: 0, gridExport: 1e12, production: 3)),
    ]

    @Test func recordsSurviveARoundTripExactly() throws {
        let text = EnergyStateFile.encode(records)
        #expect(text.hasPrefix("sec1000-energy 1\nunit=1 import=1234.5 export=0.1 production=98765.125 applied-import=1000\nunit=7 "))
        #expect(try EnergyStateFile.decode(text) == records)
    }

    @Test func anEmptyFileOfNoDevicesIsValid() throws {
        #expect(try EnergyStateFile.decode(EnergyStateFile.encode([:])) == [:])
    }

    @Test func damageIsDetected() throws {
        let text = EnergyStateFile.encode(records)
        let cases: [(String, EnergyStateError)] = [
            ("", .badHeader),
            ("garbage\n", .badHeader),
            (String(text.dropLast(20)), .missingChecksum),
            (String(text.prefix(40)), .missingChecksum),
            (text.replacingOccurrences(of: "1234.5", with: "9234.5"), .checksumMismatch(stored: 0, computed: 0)),
            (text.replacingOccurrences(of: "checksum=", with: "checksum=x"), .malformedLine(4, "")),
        ]
        for (damaged, expected) in cases {
            #expect {
                try EnergyStateFile.decode(damaged)
            } throws: { error in
                guard let error = error as? EnergyStateError else { return false }
                switch (error, expected) {
                case (.checksumMismatch, .checksumMismatch), (.malformedLine, .malformedLine): return true
                default: return error == expected
                }
            }
        }
    }

    /// A well-formed file with a correct checksum is still refused when its contents make no sense.
    @Test(arguments: [
        "unit=1 import=1 export=2\n",
        "unit=1 import=-1 export=2 production=3\n",
        "unit=1 import=nan export=2 production=3\n",
        "unit=x import=1 export=2 production=3\n",
        "unit=1 import=1 export=2 production=3 colour=blue\n",
        "unit=1 import=1 export=2 production=3 applied-import=1.5\n",
        "unit=1 import=1 import=1 export=2 production=3\n",
        "unit=1 import=1 export=2 production=3\nunit=1 import=1 export=2 production=3\n",
    ])
    func nonsenseIsRefusedEvenWithAGoodChecksum(body: String) {
        let text = "sec1000-energy 1\n" + body
        let signed = text + "checksum=\(String(format: "%08x", fnv1aForTest(text)))\n"
        #expect(throws: EnergyStateError.self) { try EnergyStateFile.decode(signed) }
    }

    @Test func loadTellsAMissingFileFromABadOne() async throws {
        try await withTemporaryDirectory { directory in
            let file = EnergyStateFile(path: directory + "/sub/energy.state")
            #expect(try file.load() == nil)
            try file.save(records)
            #expect(try file.load() == records)
            try Data("not a state file".utf8).write(to: URL(fileURLWithPath: file.path))
            #expect(throws: EnergyStateError.notAStateFile) { try file.load() }
            try Data("sec1000-energy 2\n".utf8).write(to: URL(fileURLWithPath: file.path))
            #expect(throws: EnergyStateError.badHeader) { try file.load() }
            #expect(try file.setAsideCorrupt().hasPrefix(file.path + ".corrupt-"))
            #expect(try file.load() == nil)
        }
    }

    @Test func commandLineReadingsAreAppliedOncePerValue() {
        let stored = EnergyRecord(counters: EnergyCounters(gridImport: 500.5, gridExport: 20, production: 30), applied: [.gridImport: 400])
        // No file: the given values are the counters.
        let fresh = EnergyRecord.starting(stored: nil, alignments: [.gridExport: 7])
        #expect(fresh.record == EnergyRecord(counters: EnergyCounters(gridExport: 7), applied: [.gridExport: 7]))
        #expect(fresh.changed == [.gridExport])
        // The same value as last time: already applied, the counter has moved on since.
        let again = EnergyRecord.starting(stored: stored, alignments: [.gridImport: 400])
        #expect(again.record == stored)
        #expect(again.changed.isEmpty)
        // A new value: applied.
        let aligned = EnergyRecord.starting(stored: stored, alignments: [.gridImport: 900, .production: 31])
        #expect(aligned.record.counters == EnergyCounters(gridImport: 900, gridExport: 20, production: 31))
        #expect(aligned.record.applied == [.gridImport: 900, .production: 31])
        #expect(aligned.changed == [.gridImport, .production])
        // Nothing given: the file as it was.
        #expect(EnergyRecord.starting(stored: stored, alignments: [:]).record == stored)
    }
}

/// FNV-1a, 32 bits, written out again so the test does not trust the code under test.
func fnv1aForTest(_ text: String) -> UInt32 {
    text.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
}
