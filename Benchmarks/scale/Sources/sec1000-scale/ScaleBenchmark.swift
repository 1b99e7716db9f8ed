// The polling core with N devices: the bridge's DeviceServices, built by
// `BridgeRuntime.pollingCore`, run in one ServiceGroup as `sec1000 bridge` runs them, without the
// Modbus server (unit ids stop at 247). It measures its own process: threads, memory, CPU and polls.
//
//   sec1000-scale --devices N --simulator HOST:PORT [--simulator HOST:PORT ...]
//                 [--interval S] [--duration S] [--sample-every S] [--samples FILE]
//
// FILE receives every sample: seconds since the start, threads, VmRSS in KiB.
// Device i polls simulator i mod (number of simulators). Prints one `RESULT key=value ...` line on
// standard output and a line for people on standard error; exits 1 if a poll failed.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import Logging
import ProcessSampling
import SEC1000Client
import ServiceLifecycle
import Sockets

struct Options {
    var devices = 1
    var simulators: [SocketAddress] = []
    var interval = 10.0
    var duration = 60.0
    var sampleEvery = 0.1
    var samplesPath: String?

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
        while let argument = rest.popFirst() {
            switch argument {
            case "--devices":
                let text = value(argument)
                guard let count = Int(text), count >= 1 else { fail("--devices \(text): at least 1") }
                options.devices = count
            case "--simulator":
                let text = value(argument)
                do { options.simulators.append(try SocketAddress(parsing: text, defaultPort: 1234)) } catch {
                    fail("--simulator \(text): \(error)")
                }
            case "--interval": options.interval = number(argument)
            case "--duration": options.duration = number(argument)
            case "--sample-every": options.sampleEvery = number(argument)
            case "--samples": options.samplesPath = value(argument)
            default: fail("unknown argument \(argument); see the comment at the top of main.swift")
            }
        }
        if options.simulators.isEmpty { fail("at least one --simulator HOST:PORT is required") }
        return options
    }
}

// MARK: The run

/// What the sampler hands back when the run's time is up.
struct Window: Sendable {
    let samples: [Sample]
    let cpuEnd: (user: Double, system: Double)
    let elapsed: Duration
    let end: ContinuousClock.Instant
    let samplerCPU: Double
    /// The threads' names when there were the most.
    let peakThreads: [String]
    let snapshots: [DeviceSnapshot]
}

/// CPU seconds of the calling thread.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// The names (comm) of this process's threads, counted: `name*count`, sorted.
func threadNames() -> [String] {
    guard let directory = opendir("/proc/self/task") else { return [] }
    defer { closedir(directory) }
    var counts: [String: Int] = [:]
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name.hasPrefix(".") { continue }
        let fd = open("/proc/self/task/\(name)/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { continue }
        var buffer = [UInt8](repeating: 0, count: 64)
        let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        close(fd)
        let comm = String(decoding: buffer.prefix(max(0, got)), as: UTF8.self).filter { $0 != "\n" && $0 != " " }
        counts[comm.isEmpty ? "?" : comm, default: 0] += 1
    }
    return counts.sorted { $0.key < $1.key }.map { "\($0.key)*\($0.value)" }
}

struct Sample: Sendable {
    let at: Duration
    let threads: Int
    let rssKiB: Int
}

@main
enum ScaleBenchmark {
    static func main() async throws {
        let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let logger = Logger(label: "sec1000.scale")

        // The bridge's defaults (timeouts 5 s, 3 attempts 2 s apart, 1 s between transactions) at the
        // benchmark's interval. Unit ids repeat past 247: nothing routes Modbus requests here.
        let configuration = BridgeConfiguration(
            devices: (0..<options.devices).map { index in
                DeviceConfiguration(address: options.simulators[index % options.simulators.count], unit: UInt8(index % 247 + 1))
            },
            interval: .seconds(options.interval))
        let threadsBefore = threadCount()
        let rssBefore = statusKiB(["VmRSS"])[0]
        let services = BridgeRuntime.pollingCore(configuration: configuration, logger: logger)
        let threadsBuilt = threadCount()
        let rssBuilt = statusKiB(["VmRSS"])[0]

        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        let duration = Duration.seconds(options.duration)
        let interval = Duration.seconds(options.interval)
        let sampleEvery = Duration.seconds(options.sampleEvery)
        let start = ContinuousClock.now
        let cpuStart = cpuSeconds()

        // Samples every `sampleEvery` until `duration`, then counts the polls and stops the group.
        // Samples every `sampleEvery` until `duration`, counts the polls, then stops the group.
        let window = try await withThrowingTaskGroup(of: Window?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask {
                var samples: [Sample] = []
                var samplerCPU = 0.0
                var peakThreads: [String] = []
                var next = start
                while true {
                    let now = ContinuousClock.now
                    if now - start >= duration { break }
                    // The sampler's own CPU, so it can be told apart from the devices'.
                    let before = threadCPUSeconds()
                    let threads = threadCount()
                    if threads > samples.map(\.threads).max() ?? 0 { peakThreads = threadNames() }
                    samples.append(Sample(at: now - start, threads: threads, rssKiB: statusKiB(["VmRSS"])[0]))
                    samplerCPU += threadCPUSeconds() - before
                    next += sampleEvery
                    try? await Task.sleep(until: min(next, start + duration), clock: .continuous)
                }
                let cpu = cpuSeconds()
                let end = ContinuousClock.now
                // Counted before the group stops: its services stop one after another, and a poll
                // that falls due meanwhile is not the benchmark's.
                let snapshots = services.map { $0.state.current }
                await group.triggerGracefulShutdown()
                return Window(
                    samples: samples, cpuEnd: cpu, elapsed: end - start, end: end, samplerCPU: samplerCPU,
                    peakThreads: peakThreads, snapshots: snapshots)
            }
            var result: Window?
            for try await value in tasks where value != nil { result = value }
            return result!
        }
        let (samples, cpuEnd, elapsed, snapshots) = (window.samples, window.cpuEnd, window.elapsed, window.snapshots)
        let shutdown = ContinuousClock.now - window.end
        let good = snapshots.reduce(0) { $0 + Int($1.goodPolls) }
        let failedAttempts = snapshots.reduce(0) { $0 + Int($1.failedPolls) }
        let settingsRead = snapshots.filter { $0.control.settingsRead != nil }.count
        let devicesUp = snapshots.filter { $0.goodPolls > 0 }.count
        // Every device polls at once at the start, then every interval: ceil(duration / interval) each.
        let pollsPerDevice = Int((options.duration / options.interval).rounded(.up))
        let expected = options.devices * pollsPerDevice
        let cpu = (cpuEnd.user - cpuStart.user) + (cpuEnd.system - cpuStart.system)
        let wall = seconds(elapsed)
        // Steady: after the first interval, once the start (every device at once) is over.
        let steady = samples.filter { $0.at >= interval }
        let steadySamples = steady.isEmpty ? samples : steady
        let (rssEnd, hwm) = { (values: [Int]) in (values[0], values[1]) }(statusKiB(["VmRSS", "VmHWM"]))

        if let path = options.samplesPath {
            let text = samples.map { "\(fixed(seconds($0.at), 2)) \($0.threads) \($0.rssKiB)\n" }.joined()
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 { fail("--samples \(path): cannot open it (errno \(errno))") }
            _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            close(fd)
        }
        let perPoll = good > 0 ? cpu * 1e6 / Double(good) : 0
        let fields: [(String, String)] = [
            ("devices", "\(options.devices)"),
            ("simulators", "\(options.simulators.count)"),
            ("interval_s", "\(options.interval)"),
            ("duration_s", fixed(wall, 2)),
            ("samples", "\(samples.count)"),
            ("threads_before", "\(threadsBefore)"),
            ("threads_built", "\(threadsBuilt)"),
            ("threads_max", "\(samples.map(\.threads).max() ?? -1)"),
            ("threads_steady_median", "\(median(steadySamples.map(\.threads)))"),
            ("threads_steady_min", "\(steadySamples.map(\.threads).min() ?? -1)"),
            ("threads_steady_max", "\(steadySamples.map(\.threads).max() ?? -1)"),
            ("rss_before_kib", "\(rssBefore)"),
            ("rss_built_kib", "\(rssBuilt)"),
            ("rss_steady_median_kib", "\(median(steadySamples.map(\.rssKiB)))"),
            ("rss_max_kib", "\(samples.map(\.rssKiB).max() ?? -1)"),
            ("rss_end_kib", "\(rssEnd)"),
            ("hwm_kib", "\(hwm)"),
            ("cpu_user_s", fixed(cpuEnd.user - cpuStart.user, 3)),
            ("cpu_system_s", fixed(cpuEnd.system - cpuStart.system, 3)),
            ("cpu_percent", fixed(100 * cpu / wall, 3)),
            ("cpu_us_per_poll", fixed(perPoll, 1)),
            ("sampler_cpu_s", fixed(window.samplerCPU, 3)),
            ("cpu_percent_without_sampler", fixed(100 * (cpu - window.samplerCPU) / wall, 3)),
            ("cpu_us_per_poll_without_sampler", fixed(good > 0 ? (cpu - window.samplerCPU) * 1e6 / Double(good) : 0, 1)),
            ("peak_threads", window.peakThreads.joined(separator: ",")),
            ("polls_good", "\(good)"),
            ("polls_expected", "\(expected)"),
            ("failed_attempts", "\(failedAttempts)"),
            ("devices_up", "\(devicesUp)"),
            ("settings_read", "\(settingsRead)"),
            ("shutdown_ms", fixed(seconds(shutdown) * 1000, 0)),
        ]
        print("RESULT " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        printError(
            "\(options.devices) devices, \(options.simulators.count) simulator(s), every \(options.interval) s for "
                + fixed(wall, 1) + " s: threads max \(samples.map(\.threads).max() ?? -1), steady "
                + "\(median(steadySamples.map(\.threads))); RSS steady \(median(steadySamples.map(\.rssKiB)) / 1024) MiB, peak \(hwm / 1024) MiB; CPU "
                + "\(fixed(100 * cpu / wall, 2)) % of one core, \(fixed(perPoll, 0)) µs per poll"
                + "; polls \(good) of \(expected) expected, \(failedAttempts) failed attempts")
        exit(failedAttempts == 0 && good >= expected ? 0 : 1)
    }
}
