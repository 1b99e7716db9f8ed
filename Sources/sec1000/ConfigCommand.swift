import ArgumentParser
import Bridge
import ConfigurationFile

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a configuration file of `sec1000 bridge --config`, or print an example.",
        subcommands: [Check.self, Example.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check FILE as `sec1000 bridge --config FILE` would, and print the configuration it gives (secrets redacted).",
            discussion: "Exit code 0: the file is good; 64: it is not, and the message names the line and column.")

        @Argument(help: "The configuration file; - reads standard input.")
        var file: String

        func run() throws {
            do {
                printNow(try Self.effectiveConfiguration(file))
            } catch let error as ConfigurationFileError {
                printError("Error: \(error)")
                throw ExitCode.validationFailure
            } catch {
                // What ties two keys together (stale-after and interval, units of the simulator and a device).
                printError("Error: \(file): \(BridgeCommand.message(for: error))")
                throw ExitCode.validationFailure
            }
        }

        /// What `bridge --config file` would run with, as YAML.
        static func effectiveConfiguration(_ file: String) throws -> String {
            let loaded = try ConfigurationFile.load(file)
            // As `bridge --config` does, but with the file read once (it may be standard input): the
            // parse sees --simulate only so that its own check needs no device; the file's come next.
            var bridge = try BridgeCommand.parse(loaded.arguments(except: []) + ["--simulate"])
            bridge.simulate = loaded.entries.contains { $0.key == "simulate" && !$0.arguments.isEmpty }
            bridge.config = file
            let configuration = try bridge.bridgeConfiguration(simulatorPort: bridge.simulate ? 1 : nil, file: loaded)
            return "# The configuration `sec1000 bridge --config \(file)` runs with.\n" + EffectiveConfiguration.yaml(
                configuration, simulation: bridge.simulate ? bridge.simulation.configuration : nil, logLevel: bridge.logLevel.rawValue,
                secrets: loaded.entries.filter(\.secret).map(\.key)).dropLast()
        }
    }

    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a commented configuration file that starts the bridge on the built-in simulated SEC1000.")

        func run() {
            printNow(exampleConfiguration)
        }
    }
}
