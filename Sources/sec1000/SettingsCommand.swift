import ArgumentParser
import Bridge
import SEC1000Client
import SEC1000Protocol

struct SettingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings",
        abstract: "Read or change the device's export-limit settings.",
        subcommands: [Get.self, Set.self])

    /// Where the device is and how hard to try.
    struct Connection: ParsableArguments {
        @OptionGroup var device: DeviceOptions

        @Option(help: "Attempts in all for each transaction.", transform: NumberArgument.integer(Ranges.retries))
        var retries: Int = 3

        @Option(help: "Seconds to wait between attempts.", transform: NumberArgument.seconds(Ranges.retryWait))
        var retryWait: Double = 5

        @Option(help: "json or text.")
        var format: OutputFormat = .text

        var client: SEC1000Client { SEC1000Client(address: device.address, timeouts: device.timeouts, minimumGap: .seconds(1)) }
        var policy: RetryPolicy { RetryPolicy(attempts: retries, wait: .seconds(double: retryWait)) }

        func show(_ settings: ExportSettings) { print(format == .json ? settings.json : settings.text) }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the export-limit settings (command 0x43).")

        @OptionGroup var connection: Connection

        func run() async throws {
            do {
                connection.show(try await connection.client.readExportSettings(policy: connection.policy))
            } catch {
                printError("error: \(connection.device.address): \(error) (after \(connection.retries) attempt\(connection.retries == 1 ? "" : "s"))")
                throw ExitCode(1)
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the export-limit settings, then read them back to confirm.",
            discussion: """
                Exit codes: 0 confirmed by the read-back; 2 refused by validation (nothing sent); \
                3 the device did not confirm; 1 the device could not be reached.
                The device does not report its meter mode: a change of the limit or the capacity must give --meter-mode.
                """)

        @OptionGroup var connection: Connection

        @Option(help: "The export limit, W.")
        var exportLimit: Int32?

        @Option(help: "The total PV capacity, W.")
        var capacity: Int32?

        @Option(help: "Which source drives the limitation: off, dred, rcr or value.")
        var controlMode: ControlModeOption?

        @Option(help: "How the meter sums the phases: each-phase or sum.")
        var meterMode: MeterModeOption?

        @Option(help: "Refuse an export limit above this, W.")
        var maxExportLimit: Int32?

        enum ControlModeOption: String, ExpressibleByArgument, CaseIterable {
            case off, dred, rcr, value
            var mode: ControlMode { ControlMode.allCases.first { $0.name == rawValue }! }
        }

        var change: SettingsChange {
            SettingsChange(exportLimit: exportLimit, totalCapacity: capacity, controlMode: controlMode?.mode, meterMode: meterMode?.mode)
        }

        func validate() throws {
            guard !change.isEmpty else {
                throw ValidationError("give at least one of --export-limit, --capacity, --control-mode, --meter-mode")
            }
        }

        func run() async throws {
            do {
                let confirmed = try await connection.client.apply(
                    change, knownMeterMode: nil, limits: ControlLimits(maxExportLimit: maxExportLimit), policy: connection.policy)
                connection.show(confirmed.after)
            } catch {
                // The outcome type every front end shares knows the exit code (Docs/cli.md).
                let outcome = ControlOutcome(error)
                printError("error: \(connection.device.address): \(outcome)")
                throw ExitCode(outcome.exitCode)
            }
        }
    }
}
