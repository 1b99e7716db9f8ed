import ArgumentParser
import Foundation
import SEC1000Simulator
@testable import sec1000
import TestSupport
import Testing

/// Every number option of the command line against absurd values (issue 14, defect 6): a value
/// outside the documented range is a usage error (exit 64) naming the option, never a trap.
/// A debug-build parse takes some 15 ms of CPU: the parsing runs off the cooperative pool and one
/// test at a time (`.serialized`), so that it never stalls the suite's other tests.
@Suite("Number options", .serialized, .timeLimit(.minutes(2)))
struct OptionParsingTests {
    /// The number options of each subcommand with the ranges Docs/cli.md gives them.
    struct NumberOption: Sendable, CustomStringConvertible {
        let command: [String]
        let name: String
        let range: ClosedRange<Double>
        let integer: Bool
        var description: String { "\(command.joined(separator: " ")) \(name)" }
    }

    static let device = ["--host", "127.0.0.1"]
    static let options: [NumberOption] = {
        let bridge = ["bridge", "--simulate"]
        var all: [NumberOption] = [
            .init(command: bridge, name: "--interval", range: 0.01...86400, integer: false),
            .init(command: bridge + ["--interval", "0.01"], name: "--stale-after", range: 0.01...864000, integer: false),
            .init(command: bridge, name: "--max-connections", range: 1...10000, integer: true),
            .init(command: bridge, name: "--max-connections-per-address", range: 1...10000, integer: true),
            .init(command: bridge, name: "--idle-timeout", range: 0.01...604800, integer: false),
            .init(command: bridge, name: "--timeout", range: 0.001...3600, integer: false),
            .init(command: bridge, name: "--retries", range: 1...1000, integer: true),
            .init(command: bridge, name: "--retry-wait", range: 0...3600, integer: false),
            .init(command: bridge, name: "--min-gap", range: 0...3600, integer: false),
            .init(command: bridge, name: "--max-backoff", range: 0...86400, integer: false),
            .init(command: bridge, name: "--max-export-limit", range: 0...Double(Int32.max), integer: true),
            .init(command: bridge, name: "--write-timeout", range: 0.01...3600, integer: false),
            .init(command: bridge, name: "--settings-every", range: 1...1_000_000, integer: true),
            .init(command: bridge, name: "--energy-save-interval", range: 0.01...86400, integer: false),
            .init(command: bridge, name: "--peak-power", range: 0...7_000_000, integer: false),
            .init(command: bridge, name: "--max-plant-power", range: 1...2_147_483_647, integer: false),
            .init(command: bridge, name: "--day-length", range: 60...31_536_000, integer: false),
            .init(command: bridge, name: "--delay", range: 0...3600, integer: false),
            .init(command: ["read"] + device, name: "--timeout", range: 0.001...3600, integer: false),
            .init(command: ["read"] + device, name: "--retries", range: 1...1000, integer: true),
            .init(command: ["read"] + device, name: "--retry-wait", range: 0...3600, integer: false),
            .init(command: ["read"] + device, name: "--cache-items", range: 1...1000, integer: true),
            .init(command: ["read"] + device, name: "--cache-max-age", range: 0.001...31_536_000, integer: false),
            .init(command: ["settings", "get"] + device, name: "--retries", range: 1...1000, integer: true),
            .init(command: ["settings", "get"] + device, name: "--retry-wait", range: 0...3600, integer: false),
            .init(command: ["analyze"] + device, name: "--timeout", range: 0.001...3600, integer: false),
            .init(command: ["simulate"], name: "--delay", range: 0...3600, integer: false),
            .init(command: ["simulate"], name: "--peak-power", range: 0...7_000_000, integer: false),
        ]
        for rate in ["short-answer", "zero-power", "bad-checksum", "truncate", "hang", "drop", "slow", "implausible"] {
            all.append(.init(command: bridge, name: "--\(rate)-rate", range: 0...1, integer: false))
        }
        return all
    }()

    /// The values of the review that crashed the bridge, and their kin.
    static let absurd = ["1e300", "inf", "nan", "-1", "99999999999999999999", "0x10", "", "2s"]

    /// The real executable: exit code 64 and a message naming the option, for every absurd value.
    @Test(arguments: ["--idle-timeout", "--stale-after", "--write-timeout", "--timeout", "--energy-save-interval",
                      "--max-backoff", "--retry-wait", "--delay", "--interval", "--min-gap", "--max-connections", "--retries"])
    func absurdValuesExitWithUsageError(option: String) async throws {
        for value in ["1e300", "inf", "nan", "-1"] {
            let result = try await runSEC1000(["bridge", "--simulate", "--listen", "127.0.0.1:0", option, value], timeout: .seconds(20))
            #expect(result.status == 64, "\(option) \(value): \(result.everything)")
            #expect(result.errors.contains("Error:") && result.errors.contains(option), "\(option) \(value): \(result.everything)")
        }
    }

    /// `--http` takes HOST:PORT and nothing looser: exit 64 naming the option, before anything starts.
    @Test func httpAddressIsStrict() async throws {
        for value in ["8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:+80", "127.0.0.1:-1", "127.0.0.1:8o80", ":8080", ""] {
            let result = try await runSEC1000(["bridge", "--simulate", "--listen", "127.0.0.1:0", "--http", value], timeout: .seconds(20))
            #expect(result.status == 64, "--http \(value): \(result.everything)")
            #expect(result.errors.contains("--http"), "--http \(value): \(result.everything)")
        }
    }

    /// Every number option, in process: the review's values are refused; the documented bounds
    /// are accepted and what lies just beyond them refused, which ties each option to the range
    /// Docs/cli.md gives it.
    @Test(arguments: options)
    func everyNumberOptionTakesExactlyItsDocumentedRange(option: NumberOption) async {
        let step = option.integer ? 1 : 0.001
        var cases = Self.absurd.map { ($0, ParseOutcome.refused) }
        for bound in [option.range.lowerBound, option.range.upperBound] {
            cases.append((NumberArgument.format(bound), .accepted(bound)))
        }
        for beyond in [option.range.lowerBound - step, option.range.upperBound + step] where beyond >= 0 {
            cases.append((option.integer ? NumberArgument.format(beyond) : String(format: "%.3f", beyond), .refused))
        }
        let texts = cases.map(\.0)
        let outcomes = await offPool { texts.map { Self.parse(option, $0) } }
        for ((text, expected), outcome) in zip(cases, outcomes) {
            #expect(outcome.result == expected, "\(option) '\(text)'")
            if case .refused = outcome.result {
                #expect(outcome.exitCode == ExitCode.validationFailure.rawValue, "\(option) '\(text)': \(outcome.message)")
                #expect(outcome.message.contains(option.name), "\(option) '\(text)': \(outcome.message)")
            }
        }
    }

    /// A property of the parser behind every option: a random string is accepted exactly when it
    /// is a plain number inside the range, and the value accepted is the number written.
    @Test(arguments: [false, true])
    func randomStringsAreAcceptedExactlyWhenPlainAndInRange(integer: Bool) async {
        let mismatches = await offPool { () -> [String] in
            var random = SplitMix64(seed: integer ? 0x5EC1001 : 0x5EC1000)
            let range: ClosedRange<Double> = 0.5...86400
            let parseDecimal = NumberArgument.seconds(range)
            let parseInteger = NumberArgument.integer(1...10000)
            var mismatches: [String] = []
            for _ in 0..<5000 {
                let (text, meant) = Self.randomNumber(&random, integer: integer)
                let wrong = integer
                    ? (meant.flatMap { (1...10000).contains($0) ? Int($0) : nil }).map(Double.init) != (try? parseInteger(text)).map(Double.init)
                    : meant.flatMap { range.contains($0) ? $0 : nil } != (try? parseDecimal(text))
                if wrong { mismatches.append(text) }
            }
            return mismatches
        }
        #expect(mismatches.isEmpty, "accepted or refused wrongly: \(mismatches.prefix(10))")
    }

    enum ParseOutcome: Equatable { case accepted(Double), refused }

    struct Parsed: Sendable {
        let result: ParseOutcome
        let exitCode: Int32
        let message: String
    }

    /// Parses `option value` in the option's command, as the executable does.
    static func parse(_ option: NumberOption, _ text: String) -> Parsed {
        do {
            let command = try SEC1000Command.parseAsRoot(option.command + [option.name, text])
            return Parsed(result: .accepted(value(of: option, in: command)), exitCode: 0, message: "")
        } catch {
            return Parsed(result: .refused, exitCode: SEC1000Command.exitCode(for: error).rawValue,
                          message: SEC1000Command.fullMessage(for: error))
        }
    }

    /// The parsed value of `option`, read back through the command's own property.
    static func value(of option: NumberOption, in command: any ParsableCommand) -> Double {
        switch (command, option.name) {
        case (let c as BridgeCommand, "--interval"): c.interval
        case (let c as BridgeCommand, "--stale-after"): c.staleAfter ?? .nan
        case (let c as BridgeCommand, "--max-connections"): Double(c.maxConnections)
        case (let c as BridgeCommand, "--max-connections-per-address"): Double(c.maxConnectionsPerAddress)
        case (let c as BridgeCommand, "--idle-timeout"): c.idleTimeout
        case (let c as BridgeCommand, "--timeout"): c.timeout
        case (let c as BridgeCommand, "--retries"): Double(c.retries)
        case (let c as BridgeCommand, "--retry-wait"): c.retryWait
        case (let c as BridgeCommand, "--min-gap"): c.minGap
        case (let c as BridgeCommand, "--max-backoff"): c.maxBackoff
        case (let c as BridgeCommand, "--max-export-limit"): c.maxExportLimit.map(Double.init) ?? .nan
        case (let c as BridgeCommand, "--write-timeout"): c.writeTimeout
        case (let c as BridgeCommand, "--settings-every"): Double(c.settingsEvery)
        case (let c as BridgeCommand, "--energy-save-interval"): c.energy.energySaveInterval
        case (let c as BridgeCommand, "--max-plant-power"): c.maxPlantPower
        case (let c as BridgeCommand, _): simulationValue(option.name, c.simulation)
        case (let c as SimulateCommand, _): simulationValue(option.name, c.simulation)
        case (let c as ReadCommand, "--timeout"): c.device.timeout
        case (let c as ReadCommand, "--retries"): Double(c.retries)
        case (let c as ReadCommand, "--retry-wait"): c.retryWait
        case (let c as ReadCommand, "--cache-items"): Double(c.cacheItems)
        case (let c as ReadCommand, "--cache-max-age"): c.cacheMaxAge
        case (let c as SettingsCommand.Get, "--retries"): Double(c.connection.retries)
        case (let c as SettingsCommand.Get, "--retry-wait"): c.connection.retryWait
        case (let c as AnalyzeCommand, "--timeout"): c.timeout
        default: .nan
        }
    }

    static func simulationValue(_ name: String, _ s: SimulationOptions) -> Double {
        switch name {
        case "--peak-power": s.peakPower
        case "--day-length": s.dayLength
        case "--delay": s.delay
        case "--short-answer-rate": s.shortAnswerRate
        case "--zero-power-rate": s.zeroPowerRate
        case "--bad-checksum-rate": s.badChecksumRate
        case "--truncate-rate": s.truncateRate
        case "--hang-rate": s.hangRate
        case "--drop-rate": s.dropRate
        case "--slow-rate": s.slowRate
        case "--implausible-rate": s.implausibleRate
        default: .nan
        }
    }

    /// A random command-line number and the value a user means by it (`nil`: not a plain number).
    /// Magnitudes from 10^-4 to 10^25 reach past every range; some strings are not plain numbers.
    static func randomNumber(_ random: inout SplitMix64, integer: Bool) -> (String, Double?) {
        let negative = random.chance(0.15)
        let digits = Int(random.next() % 26)
        var text = String(random.next() % 10) + (0..<digits).map { _ in String(random.next() % 10) }.joined()
        if !integer && random.chance(0.5) {
            let places = 1 + Int(random.next() % 4)
            text += "." + (0..<places).map { _ in String(random.next() % 10) }.joined()
        }
        if random.chance(0.3) { text = String(text.prefix(2)) }
        // "-0" would read as a short option; a negative zero is no absurd value anyway.
        if negative && text.contains(where: { $0 != "0" && $0 != "." }) { text = "-" + text }
        switch random.next() % 12 {
        case 0: return (text + "e3", nil)
        case 1: return (["inf", "nan", "infinity", "-nan", "0x1p4", "+5", " 5"][Int(random.next() % 7)], nil)
        default: break
        }
        guard let value = Double(text) else { return (text, nil) }
        if integer && Int64(text) == nil && value.magnitude < 9e18 { return (text, nil) }
        return (text, value)
    }
}
