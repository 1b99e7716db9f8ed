import ArgumentParser
import Bridge

@main
struct SEC1000Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sec1000",
        abstract: "Read a GoodWe SEC1000 Smart Energy Controller and serve it over Modbus TCP.",
        version: bridgeVersion,
        subcommands: [BridgeCommand.self, ReadCommand.self, AnalyzeCommand.self, SettingsCommand.self, SimulateCommand.self]
    )
}
