import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

private func isImplausible(_ error: SEC1000Error) -> Bool { if case .implausible = error { true } else { false } }

/// How the client, `read` and `analyze` treat a valid frame of impossible values.
@Suite("Implausible readings: client and command line")
struct ImplausibleReadingClientTests {
    @Test func theClientFailsTheAttemptAndRetriesIt() async throws {
        try await withDevice(faults: FaultRates(implausible: 1)) { device in
            var failures: [SEC1000Error] = []
            do throws(SEC1000Error) {
                let m = try await makeClient(port: device.port).readMeasurements(policy: RetryPolicy(attempts: 3, wait: .zero)) { _, error in
                    failures.append(error)
                }
                Issue.record("implausible values were taken: \(m)")
            } catch {
                guard case .implausible(let reading, let received) = error else {
                    Issue.record("another error: \(error)"); return
                }
                #expect(reading.rule == .voltageRange)
                #expect(received == ResponseEncoder.encode(.measurements(capturedMeasurements.madeImplausible)))
            }
            #expect(failures.count == 3, "every attempt is retried: a glitch may pass")
            #expect(device.validMeasurementsSent.isEmpty)
        }
    }

    @Test func aGlitchIsCuredByTheRetry() async throws {
        // Seed 5 draws 0.10 (implausible), then 0.73 (a good answer).
        try await withDevice(faults: FaultRates(implausible: 0.5), seed: 5) { device in
            var failures: [SEC1000Error] = []
            let m = try await makeClient(port: device.port).readMeasurements(policy: RetryPolicy(attempts: 5, wait: .zero)) { _, error in
                failures.append(error)
            }
            #expect(m == capturedMeasurements)
            #expect(failures.map(isImplausible) == [true])
        }
    }

    @Test func readReportsTheRuleAndExitsWith1() async throws {
        try await withDevice(faults: FaultRates(implausible: 1)) { device in
            let result = try await runSEC1000(
                ["read"] + CommandLineTests.deviceArguments(device.port) + ["--retries", "2", "--retry-wait", "0", "--no-cache"])
            #expect(result.status == 1)
            #expect(result.output.isEmpty)
            #expect(result.errorLines.count == 1, "stderr: \(result.errors)")
            #expect(result.errors.contains("implausible reading: rule voltage-range: voltage L1 is -230.0 V"))
            #expect(result.errors.contains("after 2 attempts"))
        }
    }

    @Test func analyzeShowsTheValuesAndExitsWith2() async throws {
        try await withDevice(faults: FaultRates(implausible: 1)) { device in
            let result = try await runSEC1000(["analyze"] + CommandLineTests.deviceArguments(device.port) + ["--timeout", "5"])
            #expect(result.status == 2)
            #expect(result.output.contains("2147483647"), "the decoded values are shown")
            #expect(result.output.contains(": match"), "a valid checksum")
            #expect(result.output.contains("verdict: bad answer: a valid frame, but an implausible reading: rule voltage-range"))
        }
    }
}

/// The simulator's model is a real site: the plausibility check never refuses it, at any time of
/// day, up to the largest `--peak-power` that `simulate` accepts.
@Test(arguments: [0, 8000, 7_000_000] as [Double])
func theSimulatedSiteIsPlausibleAllDay(peakPower: Double) {
    let model = MeasurementModel(peakPower: peakPower, dayLength: 86_400 / 4)
    // Every 7 s over a compressed day, so clouds and loads go through many phases too.
    let refused = stride(from: 0.0, to: 86_400, by: 7).compactMap { model.measurements(at: 1_800_000_000 + $0).implausibility() }
    #expect(refused.isEmpty, "\(refused.prefix(3))")
}
