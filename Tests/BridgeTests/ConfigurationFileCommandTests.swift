import ArgumentParser
import Bridge
import ConfigurationFile
import Foundation
@testable import sec1000
import TestSupport
import Testing

/// `sec1000 bridge --config` and `sec1000 config` (Docs/configuration.md): the file's keys are the
/// bridge's options, the command line wins, and a bad file exits 64 with its location.
/// Parsing runs off the cooperative pool, one test at a time, as in OptionParsingTests.
@Suite("Configuration file commands", .serialized, .timeLimit(.minutes(2)))
struct ConfigurationFileCommandTests {
    static func temporaryFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sec1000-bridge-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// Parses a command line as the executable does: the file merged in first.
    static func bridge(_ arguments: [String]) throws -> BridgeCommand {
        let merged = try ConfigurationFile.mergingFile(into: arguments)
        return try #require(try SEC1000Command.parseAsRoot(merged) as? BridgeCommand)
    }

    @Test func commandLineOptionsWinOverTheFile() async throws {
        let path = try Self.temporaryFile("""
            listen: 127.0.0.1:1502
            interval: 15
            retries: 5
            control-allow: [10.0.0.0/8, 192.168.0.0/16]
            enable-control: true
            devices:
              - host: 127.0.0.1
                port: 4001
                unit: 2
                name: roof
                energy-import-wh: 100
              - host: 127.0.0.1
                port: 4002
                unit: 3
            """)
        defer { unlink(path) }
        let (fromFile, overridden, otherDevices) = try await offPool { () -> Result<(BridgeConfiguration, BridgeConfiguration, BridgeConfiguration), any Error> in
            Result {
                let fromFile = try Self.bridge(["bridge", "--config", path]).bridgeConfiguration(simulatorPort: nil)
                let overridden = try Self.bridge([
                    "bridge", "--config", path, "--interval", "20", "--control-allow", "127.0.0.1", "--energy-import-wh", "3=7",
                ]).bridgeConfiguration(simulatorPort: nil)
                let otherDevices = try Self.bridge(["bridge", "--config", path, "--device", "127.0.0.1:4009@9"]).bridgeConfiguration(simulatorPort: nil)
                return (fromFile, overridden, otherDevices)
            }
        }.get()
        #expect(fromFile.interval == .seconds(15))
        #expect(fromFile.retry.attempts == 5)
        #expect(fromFile.listen.description == "127.0.0.1:1502")
        #expect(fromFile.control.enabled)
        #expect(fromFile.control.allow.map(\.description) == ["10.0.0.0/8", "192.168.0.0/16"])
        #expect(fromFile.devices.map(\.effectiveName) == ["roof", "SEC1000-127-0-0-1-4002"])
        #expect(fromFile.energy.alignments == [2: [.gridImport: 100]])
        // The command line's value wins; its list replaces the file's; the file's other keys stay.
        #expect(overridden.interval == .seconds(20))
        #expect(overridden.control.allow.map(\.description) == ["127.0.0.1/32"])
        #expect(overridden.retry.attempts == 5)
        #expect(overridden.energy.alignments == [2: [.gridImport: 100], 3: [.gridImport: 7]])
        // --device replaces the file's devices, with their energy values.
        #expect(otherDevices.devices.map(\.unit) == [9])
        #expect(otherDevices.energy.alignments.isEmpty)
    }

    /// The key table and the bridge's options stay one to one: a new option without a key (or a
    /// key without an option) fails here.
    @Test func everyBridgeOptionHasAKey() async {
        let help = await offPool { BridgeCommand.helpMessage(columns: 500) }
        let options = Set(help.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," || $0 == "=" || $0 == "/" })
            .filter { $0.hasPrefix("--") && $0.count > 2 && $0.dropFirst(2).allSatisfy { $0 == "-" || ("a"..."z").contains($0) } }
            .map { String($0.dropFirst(2)) })
        let keys = Set(ConfigurationKey.bridge.map(\.name))
        let notKeys: Set = ["config", "device", "serial-number", "energy-import-wh", "energy-export-wh", "energy-production-wh", "help", "version", "no-ha-discovery"]
        #expect(options.subtracting(notKeys) == keys, "options without a key: \(options.subtracting(notKeys).subtracting(keys)); keys without an option: \(keys.subtracting(options))")
    }

    /// The keys that take a number or another value (not a switch), by name.
    static let valueKeys: [String] = ConfigurationKey.bridge.compactMap { key in
        guard case .value = key.kind, !["listen", "energy-state"].contains(key.name) else { return nil }
        return key.name
    }

    /// Each number key against the flag of the same name: refused exactly when the flag refuses,
    /// with the flag's own "expected ..." text. One case a key: each is a dozen parses of the whole
    /// command, which under AddressSanitizer take seconds.
    @Test(arguments: valueKeys)
    func everyNumberKeyTakesWhatItsFlagTakes(key: String) async {
        let mismatches = await offPool { () -> [String] in
            var mismatches: [String] = []
            var base = key == "stale-after" ? ["--interval", "0.01"] : []
            // MQTT options need --mqtt (TLS files an mqtts:// one, a password file a username).
            if key.hasPrefix("mqtt-") || key.hasPrefix("ha-") { base += ["--mqtt", "mqtts://127.0.0.1", "--mqtt-username", "u"] }
            for value in ["1e300", "-1", "0", "0.001", "1", "0.5", "60", "3600.5", "86400", "864001", "4294967296", "x"] {
                let fileError: String?
                do {
                    _ = try ConfigurationFile.parse("\(key): \"\(value)\"\n", path: "f", ownerOnly: true)
                    fileError = nil
                } catch let error as ConfigurationFileError { fileError = error.message } catch { fileError = "\(error)" }
                var flagError: String?
                do { _ = try SEC1000Command.parseAsRoot(["bridge", "--simulate"] + base + ["--\(key)=\(value)"]) } catch {
                    flagError = SEC1000Command.message(for: error)
                }
                // Both refuse or both accept; where the flag's parser says what it expects, it says the same.
                let expected = fileError.map { $0.replacingOccurrences(of: "'\(key)': ", with: "") } ?? ""
                let sameText = flagError.map { !$0.contains("expected") || $0.contains(expected) } ?? true
                if (fileError == nil) != (flagError == nil) || !sameText {
                    mismatches.append("\(key) \(value): file \(fileError ?? "accepts"), flag \(flagError ?? "accepts")")
                }
            }
            return mismatches
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func thereAreValueKeysToCheck() {
        #expect(Self.valueKeys.count >= 20, "\(Self.valueKeys)")
        #expect(Self.valueKeys.contains("interval") && Self.valueKeys.contains("mqtt-prefix"))
    }

    // MARK: The real executable

    @Test func aBadFileExitsWithUsageErrorAndItsLocation() async throws {
        let path = try Self.temporaryFile("simulate: true\nlisten: 127.0.0.1:0\nidle-timeout: inf\n")
        defer { unlink(path) }
        for command in [["bridge", "--config", path], ["config", "check", path]] {
            let result = try await runSEC1000(command, timeout: .seconds(20))
            #expect(result.status == 64, "\(command): \(result.everything)")
            #expect(result.errors.contains("Error: \(path):3:15: 'idle-timeout': expected a number of seconds from 0.01 to 604800"),
                    "\(command): \(result.everything)")
            #expect(!result.output.contains("Modbus TCP on port"))
        }
    }

    @Test func theExamplePassesTheCheckAndTheCheckRoundTrips() async throws {
        let executable = try sec1000Executable().path
        let piped = try await runToEnd(["/bin/bash", "-c", "set -o pipefail; '\(executable)' config example | '\(executable)' config check -"])
        #expect(piped.status == 0, "\(piped.everything)")
        #expect(piped.output.contains("simulate: true"))
        // The printed configuration is itself a valid file that prints the same.
        let path = try Self.temporaryFile(piped.output)
        defer { unlink(path) }
        let again = try await runSEC1000(["config", "check", path])
        #expect(again.status == 0, "\(again.everything)")
        #expect(again.output.split(separator: "\n").dropFirst() == piped.output.split(separator: "\n").dropFirst())
    }

    @Test func theBridgeRunsFromAFileWithTheCommandLineOverIt() async throws {
        // 192.0.2.1 (TEST-NET-1) is no address of this machine: the bridge starts only if the
        // command line's --listen 127.0.0.1:0 (BridgeProcess gives it) wins over the file's.
        let path = try Self.temporaryFile("simulate: true\nlisten: 192.0.2.1:0\ninterval: 5\n")
        defer { unlink(path) }
        let bridge = try await BridgeProcess.start(["--config", path])
        defer { bridge.stop() }
        #expect(bridge.port != 0)
    }
}
