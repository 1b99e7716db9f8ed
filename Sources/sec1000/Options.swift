#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Bridge
import Logging
import SEC1000Client
import SEC1000Protocol
import Sockets

/// Where the device is and how long to wait for it.
struct DeviceOptions: ParsableArguments {
    @Option(help: "The SEC1000's host name or IP address.")
    var host: String

    @Option(help: "The SEC1000's TCP port.")
    var port: UInt16 = 1234

    @Option(help: "Seconds to wait for the connection and, again, for the answer.", transform: NumberArgument.seconds(Ranges.deviceTimeout))
    var timeout: Double = 10

    var address: SocketAddress { SocketAddress(host: host, port: port) }
    var timeouts: Timeouts { Timeouts(connect: .seconds(timeout), answer: .seconds(timeout)) }
}

/// A meter mode as `settings set --meter-mode` and `bridge --meter-mode` take it.
struct MeterModeOption: ExpressibleByArgument {
    let mode: MeterMode

    init?(argument: String) {
        guard let mode = MeterMode(optionName: argument) else { return nil }
        self.mode = mode
    }

    static var allValueStrings: [String] { MeterMode.allCases.map(\.optionName) }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case json, text
}

enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// Sends logs to standard error at `level`; the executable is the only place that bootstraps logging.
func bootstrapLogging(_ level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

/// Writes one line to standard error.
func printError(_ message: String) {
    var stream = Unbuffered(descriptor: 2)
    print(message, to: &stream)
}

/// Writes one line to standard output at once, even when it is a pipe (a daemon's banner must not
/// sit in a buffer).
func printNow(_ message: String) {
    var stream = Unbuffered(descriptor: 1)
    print(message, to: &stream)
}

struct Unbuffered: TextOutputStream {
    let descriptor: Int32

    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

extension Duration {
    /// A duration from a number of seconds given on the command line.
    static func seconds(double value: Double) -> Duration { .milliseconds(Int64((value * 1000).rounded())) }
}
