#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Hex
import Foundation
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// `sec1000` as users and cron jobs run it: a separate process, judged by its stdout, its stderr
/// and its exit code alone.
@Suite("sec1000 command line")
struct CommandLineTests {
    static func deviceArguments(_ port: UInt16) -> [String] {
        ["--host", loopback, "--port", String(port)]
    }

    /// The whole chain through two processes: `simulate --capture` must answer `read` with the real
    /// capture, and the JSON must be the original tool's, byte for byte.
    @Test func readAgainstSimulateProcessPrintsTheOriginalToolsJSON() async throws {
        let (simulator, port) = try await startSimulateProcess(["--capture"])
        defer { simulator.send(SIGKILL) }

        let read = try await runSEC1000(["read"] + Self.deviceArguments(port) + ["--no-cache"])
        simulator.send(SIGTERM)
        let stopped = try await simulator.outcome(timeout: .seconds(5))
        #expect(read.status == 0, "read: \(read.errors)\nsimulate: \(stopped.errors)")
        #expect(read.output == goldenJSON + "\n")
        #expect(read.errors.isEmpty)
        #expect(stopped.status == 0 && !stopped.signalled, "simulate did not exit cleanly on SIGTERM: \(stopped)")
    }

    /// Starts `sec1000 simulate` on a free port and waits until it listens there itself.
    ///
    /// The port is taken outside the kernel's ephemeral range, so that no parallel test binding
    /// port 0 is handed it in between; another program may still hold it, and then simulate
    /// exits and the next port is tried.
    func startSimulateProcess(_ options: [String]) async throws -> (ChildProcess, UInt16) {
        for _ in 0..<3 {
            let port = try freePortOutsideTheEphemeralRange()
            let simulator = try ChildProcess([try sec1000Executable().path, "simulate", "--listen", "\(loopback):\(port)", "--log-level", "info"] + options)
            // simulate's banner goes to a buffered stdout; the kernel's socket table shows at once
            // whether the listening socket on the port is simulate's own.
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline && !simulator.hasExited {
                if isListening(port: port, ownedBy: simulator.pid) { return (simulator, port) }
                try await Task.sleep(for: .milliseconds(20))
            }
            simulator.send(SIGKILL)
            let outcome = try await simulator.outcome(timeout: .seconds(5))
            if !outcome.errors.contains("cannot listen") {
                throw ProcessError("simulate never listened on port \(port): \(outcome.errors)")
            }
        }
        throw ProcessError("simulate found no free port in 3 tries")
    }

    @Test func readFromNothingFailsWithOneLineNamingTheCause() async throws {
        let result = try await runSEC1000(
            ["read"] + Self.deviceArguments(try closedPort()) + ["--retries", "2", "--retry-wait", "0.1", "--no-cache"])
        #expect(result.status == 1)
        #expect(result.output.isEmpty)
        #expect(result.errorLines.count == 1, "stderr: \(result.errors)")
        #expect(result.errors.contains("connection refused"))
        #expect(result.errors.contains("after 2 attempts"))
    }

    @Test func readAsTextPrintsOneLinePerField() async throws {
        try await withDevice { device in
            let result = try await runSEC1000(["read"] + Self.deviceArguments(device.port) + ["--format", "text", "--no-cache"])
            #expect(result.status == 0, "stderr: \(result.errors)")
            #expect(result.output == """
                v1              241.0 V
                v2              240.4 V
                v3              240.9 V
                i1              4.8 A
                i2              3.9 A
                i3              5.08 A
                p1              0.295 kW
                p2              -0.114 kW
                p3              -0.532 kW
                meters_power    -0.351 kW
                inverters_power 3.386 kW

                """)
        }
    }

    /// The device's false 0 W must be hidden across one-shot runs, as the original tool did with
    /// its cache; without a cache the raw 0 shows.
    @Test func zeroPowerCacheCarriesAcrossRuns() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sec1000-cli-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = directory + "/inverters.cache"
        var measurements = capturedMeasurements
        try await withDevice(measurements: nil) { device in
            let arguments = ["read"] + Self.deviceArguments(device.port) + ["--retries", "1"]
            func invertersPower(_ extra: [String]) async throws -> String? {
                let result = try await runSEC1000(arguments + extra)
                #expect(result.status == 0, "stderr: \(result.errors)")
                #expect(result.errors.isEmpty)
                return result.output.firstMatch(of: /"inverters_power": (-?[0-9.]+)/).map { String($0.1) }
            }

            measurements.invertersPower = 3000
            device.setMeasurements(measurements)
            let daylight = try await invertersPower(["--cache", cache])
            #expect(daylight == "3.0")

            measurements.invertersPower = 0
            device.setMeasurements(measurements)
            let falseZeroCached = try await invertersPower(["--cache", cache])
            #expect(falseZeroCached == "3.0", "the cached 3000 W did not stand in for the false 0")
            let falseZeroUncached = try await invertersPower(["--no-cache"])
            #expect(falseZeroUncached == "0.0")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["inverters.cache"],
                "the cache directory holds something besides the cache")
    }

    @Test func analyzeOfTheGoldenCaptureIsValid() async throws {
        let result = try await runSEC1000(["analyze", "--hex", goldenAnswer.hexDescription])
        #expect(result.status == 0)
        #expect(result.output.contains("checksum: received 0x0F42, computed 0x0F42: match"))
        #expect(result.output.contains("verdict: a valid answer"))
        #expect(result.output.contains("3.386 kW"))
    }

    @Test func analyzeOfAFlippedByteFindsTheChecksumMismatch() async throws {
        var flipped = goldenAnswer
        flipped[20] ^= 0x01
        let result = try await runSEC1000(["analyze", "--hex", flipped.hexDescription])
        #expect(result.status == 2)
        #expect(result.output.contains("checksum: received 0x0F42, computed 0x0F41: MISMATCH"))
        #expect(result.output.contains("checksum mismatch"))
    }

    @Test func analyzeOfADeviceShowsItsShortAnswer() async throws {
        try await withDevice(faults: FaultRates(shortAnswer: 1)) { device in
            let result = try await runSEC1000(["analyze"] + Self.deviceArguments(device.port) + ["--timeout", "5"])
            #expect(result.status == 2, "stderr: \(result.errors)")
            #expect(result.output.contains("request: 00 05 01 01 0B 00 0D"))
            #expect(result.output.contains("answer (13 bytes): 04 52 45 56 4F 00 06 01 01 0B 15 00 22"))
            #expect(result.output.contains("short answer"))
        }
    }

    /// A device that drops the connection at once is not one that is slow to answer: the message
    /// must say which, or the user looks for the wrong fault.
    @Test func analyzeOfADeviceThatDropsTheConnectionSaysSo() async throws {
        try await withDevice(faults: FaultRates(drop: 1)) { device in
            let result = try await runSEC1000(["analyze"] + Self.deviceArguments(device.port) + ["--timeout", "5"])
            #expect(result.status == 1)
            #expect(result.errors.contains("connection reset"), "stderr: \(result.errors)")
        }
    }

    @Test func analyzeOfNothingFailsWithExitCode1() async throws {
        let result = try await runSEC1000(["analyze"] + Self.deviceArguments(try closedPort()) + ["--timeout", "2"])
        #expect(result.status == 1)
        #expect(result.errors.contains("connection refused"))
    }

    /// Usage errors must be told apart from device failures (exit 64, EX_USAGE) and must not touch
    /// the network: the host `x` does not exist. One at a time, so as not to start a dozen
    /// processes at once on two cores under the timing-sensitive tests.
    @Test(.serialized, arguments: [
        ["read", "--host", "x", "--timeout", "-1"],
        ["read", "--host", "x", "--timeout=-1"],
        ["read", "--host", "x", "--timeout", "0"],
        ["read", "--host", "x", "--retries", "0"],
        ["read", "--host", "x", "--cache", "/tmp/never", "--no-cache"],
        ["read", "--host", "x", "--format", "xml"],
        ["read"],
        ["analyze"],
        ["analyze", "--hex", "zz"],
        ["analyze", "--hex", "00", "--host", "x"],
        ["simulate", "--listen", "127.0.0.1:99999"],
        ["simulate", "--drop-rate", "2"],
    ])
    func badArgumentsExitWithUsageError(arguments: [String]) async throws {
        let result = try await runSEC1000(arguments, timeout: .seconds(10))
        #expect(result.status == 64, "stderr: \(result.errors)")
        #expect(result.output.isEmpty)
        #expect(!result.errors.isEmpty)
    }
}
