import Testing
@testable import SEC1000Protocol

/// The real capture's values (Docs/protocol.md), the base every case below changes one field of.
private let golden = Measurements(
    voltages: [2410, 2404, 2409], currents: [480, 390, 508], powers: [295, -114, -532],
    meterPower: -351, invertersPower: 3386)

private func changed(_ change: (inout Measurements) -> Void) -> Measurements {
    var m = golden
    change(&m)
    return m
}

@Suite("Plausibility of a reading")
struct PlausibilityTests {
    @Test func theRealCaptureIsPlausible() throws {
        guard case .measurements(let m) = try ResponseDecoder.decode(goldenAnswer, for: .readMeasurements) else {
            Issue.record("not measurements"); return
        }
        #expect(m.implausibility() == nil)
    }

    /// Real situations at the edges of the bounds: none may be refused.
    @Test(arguments: [
        ("an absent phase: 0 V, 0 A, 0 W", changed { $0.voltages[2] = 0; $0.currents[2] = 0; $0.powers[2] = 0; $0.meterPower = 295 - 114 }),
        ("a 120 V split-phase leg", changed { $0.voltages = [1200, 1200, 0]; $0.currents = [1000, 800, 0]; $0.powers = [1150, -900, 0]; $0.meterPower = 250 }),
        ("a lost neutral: 400 V on one phase", changed { $0.voltages[0] = 4000 }),
        ("night: 0 W inverters", changed { $0.invertersPower = 0 }),
        ("a battery charging from the grid: negative inverters power", changed { $0.invertersPower = -5000 }),
        ("power factor 1 on every phase", changed { $0.powers = [1157, -938, -1224]; $0.meterPower = 1157 - 938 - 1224 }),
        ("V × I and the sum just inside their tolerance", changed {
            $0.powers[0] = 1496  // 241.0 V × 4.80 A = 1156.8 VA, + 25 % + 50 W = 1496
            $0.meterPower = 1496 - 114 - 532 + 585  // allowed difference: 25 % of 2142 W + 50 W = 585.5 W
        }),
        ("a 10 kA CT at full load", changed { $0.voltages = [2300, 2300, 2300]; $0.currents = [1_000_000, 1_000_000, 1_000_000]; $0.powers = [2_300_000, 2_300_000, 2_300_000]; $0.meterPower = 6_900_000 }),
        ("negative currents (a firmware that signs them)", changed { $0.currents = [-480, -390, -508] }),
    ] as [(String, Measurements)])
    func realReadingsAreAccepted(_ situation: String, _ m: Measurements) {
        #expect(m.implausibility() == nil, "\(situation)")
    }

    /// Each rule, broken by one change to the real capture, is what refuses it.
    @Test(arguments: [
        (PlausibilityRule.voltageRange, changed { $0.voltages[0] = -2300 }),
        (.voltageRange, changed { $0.voltages[1] = 5001 }),
        (.voltageRange, changed { $0.voltages[2] = .min }),
        (.currentRange, changed { $0.currents[0] = 1_000_001 }),
        (.currentRange, changed { $0.currents[2] = .min }),
        (.phasePower, changed { $0.powers[0] = 1497; $0.meterPower = 1497 - 114 - 532 }),
        (.phasePower, changed { $0.powers[1] = .max }),
        (.phasePower, changed { $0.voltages[2] = 0; $0.powers[2] = -532 }),
        (.meterRange, changed { $0.meterPower = .max }),
        (.meterRange, changed { $0.meterPower = -15_000_001 }),
        (.meterSum, changed { $0.meterPower = -351 + 286 }),  // allowed: 25 % of 941 W + 50 W = 285.25 W
        (.meterSum, changed { $0.meterPower = 351 }),
        (.invertersRange, changed { $0.invertersPower = .max }),
        (.invertersRange, changed { $0.invertersPower = -15_000_001 }),
    ] as [(PlausibilityRule, Measurements)])
    func eachRuleRefusesItsViolation(_ rule: PlausibilityRule, _ m: Measurements) throws {
        let found = try #require(m.implausibility())
        #expect(found.rule == rule, "\(found)")
        #expect(found.measurements == m)
    }

    /// The values the issue observed: the message names the rule and the value.
    @Test func theObservedFrameIsRefusedWithItsValues() throws {
        let observed = changed { $0.voltages[0] = -2300; $0.meterPower = .max; $0.invertersPower = .max }
        let found = try #require(observed.implausibility())
        #expect(found.description == "rule voltage-range: voltage L1 is -230.0 V, outside 0.0 V to 500.0 V")
    }

    @Test func theBoundsCanBeTightened() {
        let bounds = PlausibilityBounds(maximumVoltage: 2500)
        #expect(golden.implausibility(within: bounds) == nil)
        #expect(changed { $0.voltages[0] = 2501 }.implausibility(within: bounds)?.rule == .voltageRange)
    }

    @Test func analyzeFlagsAnImplausibleValidFrame() {
        let bytes = ResponseEncoder.encode(.measurements(changed { $0.invertersPower = .max }))
        let analysis = AnswerAnalysis(bytes: bytes, command: .readMeasurements)
        #expect(analysis.receivedChecksum == analysis.computedChecksum)
        #expect(analysis.implausibility?.rule == .invertersRange)
        #expect(analysis.text.contains("verdict: bad answer: a valid frame, but an implausible reading: rule inverters-range"))
        #expect(AnswerAnalysis(bytes: goldenAnswer, command: .readMeasurements).implausibility == nil)
    }
}
