import ArgumentParser
import SEC1000Client
import SEC1000Protocol

struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read the measurements once and print them (the original tool's JSON by default).")

    @OptionGroup var device: DeviceOptions

    @Option(help: "Attempts in all before giving up.", transform: NumberArgument.integer(Ranges.retries))
    var retries: Int = 10

    @Option(help: "Seconds to wait between attempts.", transform: NumberArgument.seconds(Ranges.retryWait))
    var retryWait: Double = 5

    @Option(help: "The zero-power filter's cache file (default: under $XDG_CACHE_HOME or ~/.cache/sec1000).")
    var cache: String?

    @Flag(help: "Use no cache file: the filter starts empty on every run.")
    var noCache = false

    @Option(help: "Values the zero-power filter keeps.", transform: NumberArgument.integer(1...1000))
    var cacheItems: Int = 10

    @Option(help: "Seconds after which an unchanged cache is emptied.", transform: NumberArgument.seconds(0.001...31_536_000))
    var cacheMaxAge: Double = 1200

    @Option(help: "json (the original tool's keys and units) or text.")
    var format: OutputFormat = .json

    func validate() throws {
        guard !(noCache && cache != nil) else { throw ValidationError("--cache and --no-cache exclude each other") }
    }

    func run() async throws {
        let client = SEC1000Client(address: device.address, timeouts: device.timeouts, minimumGap: .zero)
        let cachePath = noCache ? nil : cache ?? ZeroPowerCacheFile.defaultPath(host: device.host, port: device.port)
        do {
            let (reading, cacheError) = try await client.readFiltered(
                policy: RetryPolicy(attempts: retries, wait: .seconds(double: retryWait)),
                cacheFile: cachePath.map(ZeroPowerCacheFile.init(path:)),
                capacity: cacheItems, maximumAge: cacheMaxAge)
            if let cacheError { printError("warning: \(cacheError)") }
            print(format == .json ? reading.filtered.json : reading.filtered.text)
        } catch {
            printError("error: \(device.address): \(error) (after \(retries) attempt\(retries == 1 ? "" : "s"))")
            throw ExitCode(1)
        }
    }
}
