import ArgumentParser
import Bridge
import ConfigurationFile
import HTTPFace
import Logging
import MQTTFace
import SEC1000Client
import SEC1000Simulator
import ServiceLifecycle
import Sockets

struct BridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge",
        abstract: "Poll one or more SEC1000s and serve their values as Modbus TCP registers.",
        discussion: "The register map is in Docs/register-map.md. SIGTERM or SIGINT stops the bridge cleanly.")

    @Option(help: ArgumentHelp(
        "A YAML file of options (Docs/configuration.md); an option given here wins over its key, and --device replaces its devices.",
        valueName: "file"))
    var config: String?

    @Option(name: .customLong("device"), help: "A SEC1000 as HOST[:PORT][@UNIT] (port 1234, unit 1 by default); repeat for more.")
    var devices: [String] = []

    @Flag(help: "Start the built-in simulated SEC1000 and serve it (on unit 1).")
    var simulate = false

    @Option(help: "Where to serve Modbus TCP, HOST:PORT.")
    var listen: String = "0.0.0.0:502"

    @Option(help: "Seconds between polls of a device (under 5 s risks overloading a real device).", transform: NumberArgument.seconds(0.01...86400))
    var interval: Double = 10

    @Option(help: "Seconds after which data are no longer served (default: 3 intervals).", transform: NumberArgument.seconds(0.01...864000))
    var staleAfter: Double?

    @Option(
        help: "Open Modbus connections at most; at the limit a newcomer replaces the newest connection that has sent no request, or is refused.",
        transform: NumberArgument.integer(1...10000))
    var maxConnections: Int = 64

    @Option(
        help: "Open Modbus connections from one client address at most; a newcomer beyond it is refused.",
        transform: NumberArgument.integer(1...10000))
    var maxConnectionsPerAddress: Int = 16

    @Option(help: "Seconds without a complete request after which a connection is closed.", transform: NumberArgument.seconds(0.01...604800))
    var idleTimeout: Double = 60

    @Option(help: "How the device signs the meter power: import-positive (the original tool's reading) or export-positive.")
    var gridSign: GridSignOption = .importPositive

    @Option(help: "Seconds to wait for a device to connect and, again, to answer.", transform: NumberArgument.seconds(Ranges.deviceTimeout))
    var timeout: Double = 5

    @Option(help: "Attempts per poll.", transform: NumberArgument.integer(Ranges.retries))
    var retries: Int = 3

    @Option(help: "Seconds between attempts of one poll.", transform: NumberArgument.seconds(Ranges.retryWait))
    var retryWait: Double = 2

    @Option(help: "Least seconds between two transactions with one device.", transform: NumberArgument.seconds(0...3600))
    var minGap: Double = 1

    @Option(help: "Longest pause, in seconds, between polls of a device that keeps failing.", transform: NumberArgument.seconds(0...86400))
    var maxBackoff: Double = 60

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: LogLevelOption = .info

    @Flag(help: "Accept Modbus writes to block D (export-limit control) from --control-allow clients.")
    var enableControl = false

    @Option(help: "A client network allowed to write, as CIDR (192.168.1.0/24, 10.0.0.7); repeat for more. Empty: nobody.")
    var controlAllow: [String] = []

    @Option(help: "The highest export limit a write may set, W.", transform: NumberArgument.integer(0...Int32.max))
    var maxExportLimit: Int32?

    @Option(help: "Seconds a write may take on the device before it is answered with exception 0x0B.", transform: NumberArgument.seconds(0.01...3600))
    var writeTimeout: Double = 30

    @Option(help: "Read the export settings from the device every this many good polls.", transform: NumberArgument.integer(1...1_000_000))
    var settingsEvery: Int = 30

    @Option(help: "The meter mode the devices were commissioned with (each-phase or sum): the device does not report it, and a limit change must carry it.")
    var meterMode: MeterModeOption?

    @Flag(help: "Set the device clock from this host at start and once a day.")
    var syncClock = false

    @Option(
        help: "The most power, W, the plant can import, export or produce; a poll beyond it adds no energy to the counters.",
        transform: NumberArgument.decimal(1...2_147_483_647, unit: "W"))
    var maxPlantPower: Double = BridgeConfiguration.defaultMaxPlantPower

    @Option(
        help: "Serve metrics, health checks and a status page over HTTP on HOST:PORT (read-only; off unless given).",
        transform: HTTPAddressArgument.parse)
    var http: SocketAddress?

    @OptionGroup(title: "Simulated device (with --simulate)")
    var simulation: SimulationOptions

    @OptionGroup(title: "Energy counters and SunSpec identity")
    var energy: EnergyOptions

    @OptionGroup(title: "MQTT (Docs/mqtt.md)")
    var mqttOptions: MQTTOptions

    enum GridSignOption: String, ExpressibleByArgument, CaseIterable {
        case importPositive = "import-positive"
        case exportPositive = "export-positive"
    }

    func validate() throws {
        guard simulate || !devices.isEmpty || config != nil else { throw ValidationError("give at least one --device, or --simulate") }
        if config == "-" { throw ValidationError("--config needs a file: standard input (-) is for sec1000 config check") }
        // Each number's range is checked as it is parsed (NumberArgument); here only what ties two together.
        if let staleAfter, staleAfter < interval { throw ValidationError("--stale-after must be at least --interval") }
        try simulation.check()
        _ = try bridgeConfiguration(simulatorPort: simulate ? 1 : nil)
        _ = try mqttOptions.configuration(controlEnabled: enableControl)
    }

    /// The bridge's configuration; a simulated device, if any, comes first on unit 1.
    /// `file` is the `--config` file when already read (`config check` reads standard input once).
    func bridgeConfiguration(simulatorPort: UInt16?, file loaded: ConfigurationFile? = nil) throws -> BridgeConfiguration {
        do {
            var parsed = try devices.map { (text: String) throws(ConfigurationError) in try DeviceConfiguration(parsing: text) }
            // The file's devices, unless the command line gives its own (--device replaces the list).
            var fileAlignments: [UInt8: [EnergyCounter: UInt64]] = [:]
            if let config, devices.isEmpty {
                let file: ConfigurationFile
                if let loaded { file = loaded } else {
                    do { file = try ConfigurationFile.load(config) } catch { throw ConfigurationError.invalid(error.description) }
                }
                parsed = file.devices
                fileAlignments = file.alignments
            }
            if let simulatorPort {
                parsed.insert(DeviceConfiguration(
                    address: SocketAddress(host: "127.0.0.1", port: simulatorPort), unit: 1, serialNumber: "SEC1000-SIMULATED"), at: 0)
            }
            let listenAddress: SocketAddress
            do { listenAddress = try SocketAddress(parsing: listen, defaultPort: 502) } catch {
                throw ConfigurationError.invalid("--listen: \(error)")
            }
            var configuration = BridgeConfiguration(
                devices: parsed, listen: listenAddress, interval: .seconds(double: interval),
                staleAfter: staleAfter.map { .seconds(double: $0) }, maxConnections: maxConnections,
                idleTimeout: .seconds(double: idleTimeout), gridSign: gridSign == .importPositive ? .importPositive : .exportPositive,
                timeouts: Timeouts(connect: .seconds(double: timeout), answer: .seconds(double: timeout)),
                retry: RetryPolicy(attempts: retries, wait: .seconds(double: retryWait)),
                minimumGap: .seconds(double: minGap), maxBackoff: .seconds(double: maxBackoff),
                control: ControlConfiguration(
                    enabled: enableControl,
                    allow: try controlAllow.map { (text: String) throws(ConfigurationError) in try AddressRange(parsing: text) },
                    limits: ControlLimits(maxExportLimit: maxExportLimit),
                    writeTimeout: .seconds(double: writeTimeout), settingsEvery: settingsEvery, syncClock: syncClock,
                    meterMode: meterMode?.mode))
            configuration.maxPlantPower = maxPlantPower
            configuration.maxConnectionsPerAddress = maxConnectionsPerAddress
            configuration.energy.alignments = fileAlignments
            try energy.apply(to: &configuration)
            try configuration.validate()
            return configuration
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }

    /// Re-reads the configuration file and applies it to the running bridge: the file is read
    /// and checked exactly as at start (flags still win), and a file that fails the check leaves
    /// everything as it runs.
    func reload(_ runtime: BridgeRuntime, simulatorPort: UInt16?, logger: Logger) {
        guard let config else {
            logger.notice("SIGHUP received: there is no configuration file (--config) to reload; ignored")
            return
        }
        do {
            let arguments = try ConfigurationFile.mergingFile(into: Array(CommandLine.arguments.dropFirst()))
            guard let new = try SEC1000Command.parseAsRoot(arguments) as? BridgeCommand else {
                throw ValidationError("the command line is no longer `bridge`")
            }
            var needsRestart: [String] = []
            if new.simulate != simulate { needsRestart.append("simulate") }
            if new.logLevel != logLevel { needsRestart.append("log-level") }
            if new.http != http { needsRestart.append("http") }
            needsRestart += new.mqttOptions.changed(from: mqttOptions)
            let report = try runtime.reload(try new.bridgeConfiguration(simulatorPort: new.simulate ? simulatorPort : nil))
            logger.notice("configuration reloaded", metadata: [
                "file": "\(config)", "added-units": "\(report.added)", "removed-units": "\(report.removed)",
                "changed-units": "\(report.changed)",
            ])
            needsRestart += report.needsRestart
            if !needsRestart.isEmpty {
                logger.warning("these settings change only with a restart; they stay as they run", metadata: [
                    "options": "\(needsRestart.joined(separator: ", "))",
                ])
            }
        } catch {
            logger.error("configuration not reloaded: the running configuration stays", metadata: [
                "file": "\(config)", "reason": "\(SEC1000Command.message(for: error))",
            ])
        }
    }

    func run() async throws {
        keepLargeAllocationsMapped()
        ignoreBrokenPipes()
        HangupService.ignoreUntilRunning()
        bootstrapLogging(logLevel.level)
        let logger = Logger(label: "sec1000.bridge")
        try checkDescriptorLimit()
        var simulator: SimulatedDevice?
        if simulate {
            var configuration = simulation.configuration
            configuration.listen = SocketAddress(host: "127.0.0.1", port: 0)
            // The simulator's request log is noise next to the bridge's own, unless debugging.
            var simulatorLogger = Logger(label: "sec1000.simulator")
            simulatorLogger.logLevel = logLevel.level <= .debug ? logLevel.level : max(logLevel.level, .notice)
            simulator = try SimulatedDevice(configuration: configuration, logger: simulatorLogger)
        }
        let runtime: BridgeRuntime
        do {
            runtime = try BridgeRuntime(
                configuration: try bridgeConfiguration(simulatorPort: simulator?.port), logger: logger)
        } catch let error as SocketError {
            printError("error: cannot listen on \(listen): \(error)")
            throw ExitCode(1)
        } catch let error as EnergyStateStartupError {
            // Exit 1, as for a port that cannot be opened: the command line is valid, the file is not usable.
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if enableControl && controlAllow.isEmpty {
            logger.warning("--enable-control without --control-allow: every write is still refused")
        }
        if interval < 5 {
            logger.warning("polling a real SEC1000 faster than every 5 s can make it stop answering", metadata: ["interval": "\(interval)"])
        }
        logger.info("sec1000 bridge started", metadata: [
            "version": "\(bridgeVersion)", "devices": "\(runtime.devices.map { "\($0.device.address)@\($0.device.unit)" })",
        ])
        let listenHost = (try? SocketAddress(parsing: listen, defaultPort: 502).host) ?? "127.0.0.1"
        let host = listenHost == "0.0.0.0" || listenHost == "::" ? "127.0.0.1" : listenHost
        printNow("Modbus TCP on port \(runtime.server.port). Read grid and inverter power (W) with:")
        printNow("  mbpoll -m tcp -a 1 -p \(runtime.server.port) -0 -r 18 -c 2 -t 4:int -B -1 \(host)")
        var faceServices: [any Service] = []
        var mqttFace: MQTTFace?
        if let mqttConfiguration = try mqttOptions.configuration(controlEnabled: enableControl) {
            do {
                mqttFace = try MQTTFace(runtime: runtime, configuration: mqttConfiguration, logger: logger)
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            printNow("MQTT: publishing to \(mqttConfiguration.connection.broker) under \(mqttConfiguration.prefix)/. Watch with:")
            printNow("  mosquitto_sub -h \(mqttConfiguration.connection.broker.host) -p \(mqttConfiguration.connection.broker.port) -t '\(mqttConfiguration.prefix)/#' -v")
        }
        if let http {
            let extraMetrics = MQTTOptions.metricsSource(mqttFace)
            let face = HTTPFaceRuntime(runtime: runtime, address: http, logger: logger) { configuration in
                configuration.extraMetrics = extraMetrics
            }
            faceServices = face.services
            if http.port != 0 { printNow("Status page, metrics and health checks: \(face.url)") }
        }
        // After the HTTP face: graceful shutdown goes in reverse, so MQTT says offline first.
        if let mqttFace { faceServices.append(mqttFace) }
        // SIGHUP (systemctl reload) re-reads the --config file; without one it is logged and ignored.
        let simulatorPort = simulator?.port
        let hangups = HangupService { [self, logger] in
            reload(runtime, simulatorPort: simulatorPort, logger: logger)
        }
        let group = ServiceGroup(configuration: .init(
            // The simulator first, so the first poll finds it, and last to stop.
            services: ([hangups] + (simulator.map { [SimulatorService(device: $0)] } ?? []) + runtime.services + faceServices)
                .map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("sec1000 bridge stopped")
    }
}
