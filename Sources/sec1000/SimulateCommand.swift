import ArgumentParser
import Bridge
import Logging
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import UnixSignals

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run a simulated SEC1000 that speaks the device protocol, with optional faults.")

    @Option(help: "Where to listen, HOST:PORT.")
    var listen: String = "127.0.0.1:1234"

    @OptionGroup var simulation: SimulationOptions

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: LogLevelOption = .info

    func validate() throws {
        _ = try parsedListen()
        try simulation.check()
    }

    func parsedListen() throws -> SocketAddress {
        do { return try SocketAddress(parsing: listen, defaultPort: 1234) } catch { throw ValidationError("--listen: \(error)") }
    }

    func run() async throws {
        ignoreBrokenPipes()
        bootstrapLogging(logLevel.level)
        var configuration = simulation.configuration
        configuration.listen = try parsedListen()
        let device: SimulatedDevice
        do {
            device = try SimulatedDevice(configuration: configuration)
        } catch {
            printError("error: cannot listen on \(listen): \(error)")
            throw ExitCode(1)
        }
        device.start()
        printNow("simulated SEC1000 on \(configuration.listen.host):\(device.port); stop with Ctrl-C")
        for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
        device.stop()
    }
}

/// The simulated device's behaviour, shared by `simulate` and `bridge --simulate`.
struct SimulationOptions: ParsableArguments {
    @Flag(help: "Answer every measurements request with the real capture from the protocol notes.")
    var capture = false

    @Option(help: "Installed PV power of the simulated site, W.", transform: NumberArgument.decimal(0...7_000_000, unit: "W"))
    var peakPower: Double = 8000

    @Option(help: "Seconds in a simulated day; 86400 follows the local clock.", transform: NumberArgument.seconds(60...31_536_000))
    var dayLength: Double = 86400

    @Option(help: "Probability of a short (status) answer to a measurements request.", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var shortAnswerRate: Double = 0
    @Option(help: "Probability of a false 0 W inverters power.", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var zeroPowerRate: Double = 0
    @Option(help: "Probability of a bad checksum.", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var badChecksumRate: Double = 0
    @Option(help: "Probability of an answer cut short.", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var truncateRate: Double = 0
    @Option(help: "Probability of never answering.", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var hangRate: Double = 0
    @Option(help: "Probability of closing the connection at once (a reset).", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var dropRate: Double = 0
    @Option(
        help: "Probability of a valid measurements answer with impossible values (-230 V, 2147483647 W).",
        transform: NumberArgument.decimal(0...1, unit: "probability"))
    var implausibleRate: Double = 0
    @Option(help: "Probability of answering only after --delay.", transform: NumberArgument.decimal(0...1, unit: "probability"))
    var slowRate: Double = 0
    @Option(help: "Seconds a slow answer takes.", transform: NumberArgument.seconds(0...3600))
    var delay: Double = 2
    @Option(help: "Seed for the fault decisions, to replay a run.")
    var seed: UInt64?
    @Option(help: "The status byte answered to a set: ack (0x06) or nak (0x15); both are seen after sets that took effect.")
    var setStatus: SetStatus = .ack
    @Flag(help: "Acknowledge sets without applying them, so a read-back disagrees.")
    var ignoreSets = false
    @Flag(help: "Close the connection on a set without answering or applying it.")
    var dropSets = false

    enum SetStatus: String, ExpressibleByArgument, CaseIterable {
        case ack, nak
        var byte: UInt8 { self == .ack ? 0x06 : 0x15 }
    }

    /// Each number's range is checked as it is parsed (NumberArgument).
    func check() throws {}

    var configuration: SimulatorConfiguration {
        SimulatorConfiguration(
            faults: FaultRates(
                drop: dropRate, hang: hangRate, shortAnswer: shortAnswerRate, badChecksum: badChecksumRate,
                truncate: truncateRate, zeroPower: zeroPowerRate, slow: slowRate, delay: .seconds(double: delay),
                implausible: implausibleRate),
            seed: seed, model: MeasurementModel(peakPower: peakPower, dayLength: dayLength), replayCapture: capture,
            setStatus: setStatus.byte, ignoreSets: ignoreSets, dropSets: dropSets)
    }
}
