import Hex
import ArgumentParser
import Bridge
import SEC1000Client
import SEC1000Protocol

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Show one raw answer field by field, with its checksum and what is wrong with it.",
        discussion: """
            Give the answer as hex (--hex '04 52 45 56 4F ...') or ask a device for one (--host).
            Exits 0 for a valid answer, 2 for a bad one (also a valid frame with implausible values),
            1 when no answer could be obtained.
            """)

    @Option(help: "An answer as hex bytes, spaces allowed.")
    var hex: String?

    @Option(help: "The SEC1000 to ask for an answer.")
    var host: String?

    @Option(help: "The SEC1000's TCP port.")
    var port: UInt16 = 1234

    @Option(help: "Seconds to wait for the connection and for the answer.", transform: NumberArgument.seconds(Ranges.deviceTimeout))
    var timeout: Double = 10

    @Option(help: "The command the answer is for: measurements or settings.")
    var command: AnalyzedCommand = .measurements

    enum AnalyzedCommand: String, ExpressibleByArgument, CaseIterable {
        case measurements, settings
        var command: Command { self == .measurements ? .readMeasurements : .readExportSettings }
        var request: Request { self == .measurements ? .readMeasurements : .readExportSettings }
    }

    func validate() throws {
        guard (hex == nil) != (host == nil) else { throw ValidationError("give exactly one of --hex and --host") }
        if let hex, parseHexBytes(hex) == nil { throw ValidationError("--hex is not a sequence of hex bytes") }
    }

    func run() async throws {
        let bytes: [UInt8]
        if let hex, let parsed = parseHexBytes(hex) {
            bytes = parsed
        } else if let host {
            print("request: \(command.request.bytes.hexDescription)")
            do {
                bytes = try captureRawAnswer(
                    to: command.request, from: .init(host: host, port: port),
                    timeouts: Timeouts(connect: .seconds(double: timeout), answer: .seconds(double: timeout)))
            } catch {
                printError("error: \(host):\(port): \(error)")
                throw ExitCode(1)
            }
        } else {
            throw ExitCode.validationFailure
        }
        print("answer (\(bytes.count) bytes): \(bytes.hexDescription)")
        let analysis = AnswerAnalysis(bytes: bytes, command: command.command)
        print(analysis.text)
        if case .success(.measurements(let measurements)) = analysis.result, let note = GridSignCheck.note(for: measurements) {
            print(note)
        }
        if case .failure = analysis.result { throw ExitCode(2) }
        // The bridge and `read` refuse such values: a bad answer here too.
        if analysis.implausibility != nil { throw ExitCode(2) }
    }
}
