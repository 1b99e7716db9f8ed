// The MQTT face under load (Docs/performance.md, "The MQTT face"): N devices in one process, each
// good poll published through a real broker, as `sec1000 bridge --mqtt` publishes it. It measures its
// own process: threads, memory, CPU, and what the MQTT connections did.
//
//   sec1000-mqtt --devices N --simulator HOST:PORT [--simulator HOST:PORT ...] [--broker HOST:PORT]
//                [--per-runtime K] [--interval S] [--duration S] [--sample-every S] [--samples FILE]
//                [--no-discovery] [--trim-at S]
//
// Unit ids stop at 247 and the MQTT face names a device by its unit, so N devices are split over
// ceil(N / K) BridgeRuntimes (K = 200 by default), each with its devices on units 1 to K, its own
// Modbus server (on a free loopback port) and, with --broker, its own MQTTFace (prefix
// `bench/rI`, Home Assistant discovery on, as by default) and so its own broker connection. Without
// --broker the same runtimes run without MQTT: the comparison.
//
// For profiling memory: --no-discovery turns Home Assistant discovery off; --trim-at S calls
// malloc_trim(0) once at S seconds, so the samples after it show the live heap.
//
// FILE receives every sample: seconds since the start, threads, VmRSS in KiB, CPU seconds so far,
// connections up, topics held in the outboxes, messages handed to libmosquitto, connection losses.
// Device i polls simulator i mod (number of simulators). Prints one `RESULT key=value ...` line on
// standard output and a line for people on standard error.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import Logging
import MQTTClient
import MQTTFace
import ProcessSampling
import ServiceLifecycle
import Sockets

struct Options {
    var devices = 1
    var perRuntime = 200
    var simulators: [SocketAddress] = []
    var broker: SocketAddress?
    var interval = 10.0
    var duration = 60.0
    var sampleEvery = 1.0
    var samplesPath: String?
    /// For profiling memory: Home Assistant discovery off; `malloc_trim(0)` once at this second.
    var discovery = true
    var trimAt: Double?

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments[...]
        func value(_ name: String) -> String {
            guard let value = rest.popFirst() else { fail("\(name) needs a value") }
            return value
        }
        func number(_ name: String) -> Double {
            let text = value(name)
            guard let number = Double(text), number > 0 else { fail("\(name) \(text): a positive number is required") }
            return number
        }
        func address(_ name: String) -> SocketAddress {
            let text = value(name)
            do { return try SocketAddress(parsing: text, defaultPort: 1234) } catch { fail("\(name) \(text): \(error)") }
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--devices", "--per-runtime":
                let text = value(argument)
                guard let count = Int(text), count >= 1 else { fail("\(argument) \(text): at least 1") }
                if argument == "--devices" { options.devices = count } else { options.perRuntime = count }
            case "--simulator": options.simulators.append(address(argument))
            case "--broker": options.broker = address(argument)
            case "--interval": options.interval = number(argument)
            case "--duration": options.duration = number(argument)
            case "--sample-every": options.sampleEvery = number(argument)
            case "--samples": options.samplesPath = value(argument)
            case "--no-discovery": options.discovery = false
            case "--trim-at": options.trimAt = number(argument)
            default: fail("unknown argument \(argument); see the comment at the top of MQTTBenchmark.swift")
            }
        }
        if options.simulators.isEmpty { fail("at least one --simulator HOST:PORT is required") }
        if options.perRuntime > 247 { fail("--per-runtime \(options.perRuntime): unit ids stop at 247") }
        return options
    }
}

/// glibc's `malloc_trim(0)` (malloc.h, which the Glibc module leaves out).
func mallocTrim() {
    #if canImport(Glibc)
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
    typealias Trim = @convention(c) (Int) -> Int32
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
    #endif
}

struct Sample: Sendable {
    let at: Double
    let threads: Int
    let rssKiB: Int
    let cpu: Double
    let connected: Int
    let outboxTopics: Int
    let published: Int
    let losses: Int
}

@main
enum MQTTBenchmark {
    static func main() async throws {
        let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let logger = Logger(label: "sec1000.mqtt-bench")
        let rssBefore = statusKiB(["VmRSS"])[0]

        // The bridge's defaults at the benchmark's interval, ceil(N / K) runtimes of at most K devices.
        var built: [BridgeRuntime] = []
        var builtFaces: [MQTTFace] = []
        var first = 0
        while first < options.devices {
            let count = min(options.perRuntime, options.devices - first)
            let configuration = BridgeConfiguration(
                devices: (0..<count).map { index in
                    DeviceConfiguration(
                        address: options.simulators[(first + index) % options.simulators.count], unit: UInt8(index + 1),
                        name: "dev-\(first + index)")
                },
                listen: SocketAddress(host: "127.0.0.1", port: 0),
                interval: .seconds(options.interval))
            let runtime: BridgeRuntime
            do { runtime = try BridgeRuntime(configuration: configuration, logger: logger) } catch { fail("runtime: \(error)") }
            built.append(runtime)
            if let broker = options.broker {
                let index = built.count - 1
                let face: MQTTFace
                do {
                    face = try MQTTFace(
                        runtime: runtime,
                        configuration: MQTTFaceConfiguration(
                            connection: MQTTConfiguration(
                                broker: MQTTBrokerAddress(host: broker.host, port: broker.port),
                                clientID: "sec1000-bench-\(getpid())-\(index)"),
                            prefix: "bench/r\(index)", homeAssistantDiscovery: options.discovery),
                        logger: logger)
                } catch { fail("MQTT face: \(error)") }
                builtFaces.append(face)
            }
            first += count
        }
        let runtimes = built
        let faces = builtFaces
        let rssBuilt = statusKiB(["VmRSS"])[0]
        let services: [any Service] = runtimes.flatMap(\.services) + faces.map { $0 as any Service }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        let duration = Duration.seconds(options.duration)
        let sampleEvery = Duration.seconds(options.sampleEvery)
        let start = ContinuousClock.now
        let cpuStart = totalCPUSeconds()

        let samples = try await withThrowingTaskGroup(of: [Sample]?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask {
                var samples: [Sample] = []
                var next = start
                var trimmed = false
                while true {
                    let now = ContinuousClock.now
                    if now - start >= duration { break }
                    #if canImport(Glibc)
                    // Heap that was freed but kept by malloc goes back to the system; what stays is live.
                    if let trimAt = options.trimAt, !trimmed, seconds(now - start) >= trimAt {
                        mallocTrim()
                        trimmed = true
                    }
                    #endif
                    let statistics = faces.map(\.connection.statistics)
                    samples.append(Sample(
                        at: seconds(now - start), threads: threadCount(), rssKiB: statusKiB(["VmRSS"])[0], cpu: totalCPUSeconds() - cpuStart,
                        connected: faces.filter(\.connection.isConnected).count,
                        outboxTopics: statistics.reduce(0) { $0 + $1.outboxTopics },
                        published: statistics.reduce(0) { $0 + $1.published },
                        losses: statistics.reduce(0) { $0 + $1.connectionLosses }))
                    next += sampleEvery
                    try? await Task.sleep(until: min(next, start + duration), clock: .continuous)
                }
                let end = ContinuousClock.now
                let statistics = faces.map(\.connection.statistics)
                samples.append(Sample(
                    at: seconds(end - start), threads: threadCount(), rssKiB: statusKiB(["VmRSS"])[0], cpu: totalCPUSeconds() - cpuStart,
                    connected: faces.filter(\.connection.isConnected).count,
                    outboxTopics: statistics.reduce(0) { $0 + $1.outboxTopics },
                    published: statistics.reduce(0) { $0 + $1.published },
                    losses: statistics.reduce(0) { $0 + $1.connectionLosses }))
                await group.triggerGracefulShutdown()
                return samples
            }
            var result: [Sample] = []
            for try await value in tasks { if let value { result = value } }
            return result
        }
        let last = samples.last!
        let snapshots = runtimes.flatMap { $0.states.map(\.current) }
        let good = snapshots.reduce(0) { $0 + Int($1.goodPolls) }
        let failedAttempts = snapshots.reduce(0) { $0 + Int($1.failedPolls) }
        let expected = options.devices * Int((options.duration / options.interval).rounded(.up))
        let hwm = statusKiB(["VmHWM"])[0]
        // Steady: from the first sample at or after one interval (start-up and discovery are over).
        let steady = samples.first { $0.at >= options.interval } ?? samples[0]
        let steadyCPU = (last.cpu - steady.cpu) / max(0.001, last.at - steady.at)
        let steadyRSS = samples.filter { $0.at >= options.interval }.map(\.rssKiB).sorted()
        let published = faces.reduce(0) { $0 + $1.connection.statistics.published }

        if let path = options.samplesPath {
            let text = samples.map {
                "\(fixed($0.at, 2)) \($0.threads) \($0.rssKiB) \(fixed($0.cpu, 3)) \($0.connected) \($0.outboxTopics) \($0.published) \($0.losses)\n"
            }.joined()
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 { fail("--samples \(path): cannot open it (errno \(errno))") }
            _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            close(fd)
        }
        let fields: [(String, String)] = [
            ("mqtt", options.broker == nil ? "no" : "yes"),
            ("devices", "\(options.devices)"),
            ("runtimes", "\(runtimes.count)"),
            ("interval_s", "\(options.interval)"),
            ("duration_s", fixed(last.at, 2)),
            ("samples", "\(samples.count)"),
            ("threads_max", "\(samples.map(\.threads).max() ?? -1)"),
            ("threads_end", "\(last.threads)"),
            ("rss_before_kib", "\(rssBefore)"),
            ("rss_built_kib", "\(rssBuilt)"),
            ("rss_steady_median_kib", "\(steadyRSS.isEmpty ? -1 : steadyRSS[steadyRSS.count / 2])"),
            ("rss_max_kib", "\(samples.map(\.rssKiB).max() ?? -1)"),
            ("rss_end_kib", "\(last.rssKiB)"),
            ("hwm_kib", "\(hwm)"),
            ("cpu_s", fixed(last.cpu, 3)),
            ("cpu_percent", fixed(100 * last.cpu / last.at, 3)),
            ("cpu_percent_steady", fixed(100 * steadyCPU, 3)),
            ("polls_good", "\(good)"),
            ("polls_expected", "\(expected)"),
            ("failed_attempts", "\(failedAttempts)"),
            ("mqtt_published", "\(published)"),
            ("mqtt_connection_losses", "\(last.losses)"),
            // The most messages one connection had in libmosquitto's hands at once.
            ("mqtt_unconfirmed_max", "\(faces.map(\.connection.statistics.unconfirmedHighWater).max() ?? 0)"),
            ("mqtt_trims", "\(faces.reduce(0) { $0 + $1.connection.statistics.trims })"),
        ]
        print("RESULT " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        printError(
            "\(options.devices) devices in \(runtimes.count) runtime(s), MQTT \(options.broker == nil ? "off" : "on"), every \(options.interval) s for "
                + fixed(last.at, 1) + " s: RSS steady \(steadyRSS.isEmpty ? -1 : steadyRSS[steadyRSS.count / 2] / 1024) MiB, peak \(hwm / 1024) MiB; CPU "
                + fixed(100 * last.cpu / last.at, 2) + " % of one core (steady " + fixed(100 * steadyCPU, 2) + " %); polls \(good) of \(expected), "
                + "\(failedAttempts) failed attempts; \(published) MQTT messages")
    }
}
