import ArgumentParser
import Bridge
import ConfigurationFile

@main
struct SEC1000Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sec1000",
        abstract: "Read a GoodWe SEC1000 Smart Energy Controller and serve it over Modbus TCP.",
        version: bridgeVersion,
        subcommands: [
            BridgeCommand.self, ReadCommand.self, AnalyzeCommand.self, SettingsCommand.self, SimulateCommand.self, ConfigCommand.self,
        ]
    )

    /// `bridge --config FILE` puts the file's keys into the arguments before they are parsed, so
    /// each key goes through its option's own parser (ConfigurationFile.mergingFile).
    static func main() async {
        let arguments: [String]
        do {
            arguments = try ConfigurationFile.mergingFile(into: Array(CommandLine.arguments.dropFirst()))
        } catch {
            printError("Error: \(error)")
            Self.exit(withError: ExitCode.validationFailure)
        }
        await main(arguments)
    }
}
