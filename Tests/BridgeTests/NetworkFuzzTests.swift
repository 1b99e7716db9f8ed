#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import TestSupport
import Testing

extension Reliability {
    /// Attackers against a running bridge, each while a well-behaved master keeps reading block A:
    /// the bridge never crashes, answers every well-formed request as the contract says, and the
    /// master's p99 latency stays under 10 ms.
    ///
    /// `SEC1000_FUZZ_FRAMES` sets how many frames the fuzzer sends (default 1,000,000 in a release
    /// build, 200,000 in a debug build, 100,000 under a sanitizer), `SEC1000_HOSTILE_SECONDS` how long
    /// each other attack lasts (default 8), `SEC1000_FUZZ_SEED` the random sequence.
    @Suite("Hostile clients under load", .timeLimit(.minutes(30)))
    struct NetworkFuzzTests {
        static let frames = ReliabilityEnvironment.integer("SEC1000_FUZZ_FRAMES")
            ?? (ReliabilityEnvironment.underSanitizer ? 100_000 : ReliabilityEnvironment.optimized ? 1_000_000 : 200_000)
        static let attackDuration = Duration.seconds(ReliabilityEnvironment.integer("SEC1000_HOSTILE_SECONDS") ?? 8)
        static let seed = UInt64(ReliabilityEnvironment.integer("SEC1000_FUZZ_SEED") ?? 4)
        static let latencyBudget = ReliabilityEnvironment.latencyBudget
        static let maxConnections = 32

        /// A bridge serving the real capture, fresh for the whole test, with a small connection limit.
        func withBridge(_ body: (BridgeHarness) async throws -> Void) async throws {
            try await BridgeHarness.run(configure: {
                $0.interval = .seconds(1)
                $0.staleAfter = .seconds(3600)
                $0.maxConnections = Self.maxConnections
                // Every attacker here is on loopback, one address: the global limit is under test.
                $0.maxConnectionsPerAddress = Self.maxConnections
            }, body)
        }

        /// Runs `attack` on threads of its own while a well-behaved master reads; returns both reports.
        ///
        /// An attack whose master misses the p99 budget is run once more and the second run is
        /// judged: the master shares two cores with the attackers and the rest of the machine, so a
        /// hiccup of the machine passes (CI once measured 10.02 ms where the same attack alone gives
        /// 0.7 to 1.8 ms), while a regression of the bridge misses twice. Both figures are printed.
        func underAttack<Report: Sendable>(
            _ harness: BridgeHarness, attackers: Int = 1, _ attack: @escaping @Sendable (Int) -> Report
        ) async -> (master: MasterReport, attacks: [Report]) {
            let first = await attackOnce(harness, attackers: attackers, attack)
            guard first.master.latencies.p99 >= Self.latencyBudget else { return first }
            print("[retry] the master's p99 was \(first.master.latencies.p99.milliseconds) ms, over the \(Self.latencyBudget.milliseconds) ms budget (\(Int(first.master.stolenShare * 100)) % of the CPU time stolen by the hypervisor): the attack runs once more and that run is judged")
            return await attackOnce(harness, attackers: attackers, attack)
        }

        /// The machine's CPU time so far and the part of it the hypervisor gave to other guests
        /// (`steal` in /proc/stat), in clock ticks.
        static func cpuTicks() -> (total: Double, stolen: Double) {
            guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
                  let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
            else { return (0, 0) }
            let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            // user nice system idle iowait irq softirq steal (guest time is counted in user).
            return (fields.prefix(8).reduce(0, +), fields.count > 7 ? fields[7] : 0)
        }

        private func attackOnce<Report: Sendable>(
            _ harness: BridgeHarness, attackers: Int, _ attack: @escaping @Sendable (Int) -> Report
        ) async -> (master: MasterReport, attacks: [Report]) {
            let before = Self.cpuTicks()
            var result = await attackRun(harness, attackers: attackers, attack)
            let after = Self.cpuTicks()
            let total = after.total - before.total
            result.master.stolenShare = total > 0 ? (after.stolen - before.stolen) / total : 0
            return result
        }

        private func attackRun<Report: Sendable>(
            _ harness: BridgeHarness, attackers: Int, _ attack: @escaping @Sendable (Int) -> Report
        ) async -> (master: MasterReport, attacks: [Report]) {
            let stop = StopFlag()
            let answered = StopFlag()
            let port = harness.port
            async let master = offPool { WellBehavedMaster(port: port, answered: answered).run(until: stop) }
            // The master is in before the attack begins. The contract protects a connection that
            // has been answered; a newcomer arriving while attackers who send requests hold every
            // place is refused (Docs/reliability.md, eviction), and a slow build can lose that race.
            _ = await waitUntil(timeout: .seconds(10)) { answered.isRaised }
            let reports = await withTaskGroup(of: Report.self) { group in
                for index in 0..<attackers { group.addTask { await offPool { attack(index) } } }
                return await group.reduce(into: [Report]()) { $0.append($1) }
            }
            stop.raise()
            return (await master, reports)
        }

        /// The bridge still serves a new master after the attack, and its status block is sane.
        func expectStillServing(_ harness: BridgeHarness) async {
            let port = harness.port
            let values = await offPool { () -> ([UInt16]?, [UInt16]?) in
                guard let client = try? ModbusClient(port: port) else { return (nil, nil) }
                return (client.read(0, 28).values, client.read(200, 10).values)
            }
            #expect(values.0 == ContractOracle.blockA, "block A after the attack")
            #expect(values.1.map { ContractOracle.statusIsPlausible($0, from: 200, interval: 1) } == true, "block C after the attack")
        }

        func expectMaster(_ master: MasterReport, _ phase: String) {
            print("[\(phase)] \(ReliabilityEnvironment.build): well-behaved master: \(master.latencies.summary), longest without an answer \(master.longestOutage.milliseconds) ms, wrong answers \(master.wrongAnswers), reconnects \(master.reconnects); reads with a reconnect: \(master.reconnectLatencies.summary); CPU time stolen by the hypervisor \(Int(master.stolenShare * 100)) %")
            #expect(master.latencies.count >= 100, "\(phase): the master kept reading")
            #expect(master.wrongAnswers == 0, "\(phase): the master's answers are the contract's")
            #expect(master.longestOutage < .milliseconds(500), "\(phase): the master is never locked out")
            // A budget of milliseconds cannot be judged while the hypervisor takes the CPUs away:
            // the run is reported, not failed, when more than 5 % of the CPU time was stolen.
            if master.latencies.p99 >= Self.latencyBudget && master.stolenShare > 0.05 {
                print("[steal] \(phase): master p99 \(master.latencies.p99.milliseconds) ms over the budget with \(Int(master.stolenShare * 100)) % of the CPU time stolen by the hypervisor: not judged")
            } else {
                #expect(master.latencies.p99 < Self.latencyBudget, "\(phase): master p99 \(master.latencies.p99.milliseconds) ms, \(Int(master.stolenShare * 100)) % stolen")
            }
        }

        @Test func randomAndMutatedFrames() async throws {
            try await withBridge { harness in
                let port = harness.port
                let started = ContinuousClock.now
                let (master, fuzzers) = await underAttack(harness) { _ in
                    NetworkFuzzer(port: port, seed: Self.seed).run(frames: Self.frames)
                }
                let elapsed = ContinuousClock.now - started
                let fuzz = try #require(fuzzers.first)
                print("[fuzz] seed \(Self.seed): \(fuzz.frames) frames (\(Int(Double(fuzz.frames) / elapsed.seconds)) per second) in \(fuzz.connections) connections over \(elapsed.seconds) s; \(fuzz.answersChecked) answers checked against the contract, \(fuzz.garbageCloses) closes for non-Modbus headers, \(fuzz.truncatedEnds) hang-ups mid-frame")
                #expect(fuzz.frames >= Self.frames)
                #expect(fuzz.mismatches.isEmpty, "\(fuzz.mismatchCount) wrong answers, first: \(fuzz.mismatches)")
                #expect(fuzz.missingAnswers == 0, "answers that never came")
                #expect(fuzz.unclosedGarbage == 0, "non-Modbus headers the server did not close")
                #expect(fuzz.connectFailures == 0)
                expectMaster(master, "fuzz")
                await expectStillServing(harness)
                let statistics = harness.runtime.server.statistics
                #expect(statistics.garbageClosed >= fuzz.garbageCloses)
                #expect(statistics.requests >= fuzz.answersChecked)
            }
        }

        /// Within the limit the dribblers hold their places and each gets its answers; beyond it,
        /// they keep evicting each other (the longest idle goes), never the master.
        @Test(arguments: [maxConnections - 4, 2 * maxConnections])
        func slowloris(dribblers: Int) async throws {
            try await withBridge { harness in
                let port = harness.port
                let (master, attacks) = await underAttack(harness) { _ in
                    Slowloris(port: port, connections: dribblers, seed: Self.seed).run(for: Self.attackDuration)
                }
                let attack = try #require(attacks.first)
                print("[slowloris] \(dribblers) connections dribbling one byte at a time (\(attack.connections) opened): \(attack.bytes) bytes, \(attack.answersChecked) answers checked, \(attack.evictions) evicted")
                #expect(attack.mismatches.isEmpty, "\(attack.mismatches)")
                if dribblers < Self.maxConnections {
                    #expect(attack.answersChecked > dribblers, "the dribblers' requests are answered")
                    #expect(attack.evictions == 0)
                }
                expectMaster(master, "slowloris \(dribblers)")
                await expectStillServing(harness)
            }
        }

        @Test func connectionFloodBeyondTheLimit() async throws {
            try await withBridge { harness in
                let port = harness.port
                let (master, attacks) = await underAttack(harness) { _ in
                    ConnectionFlood(port: port, held: 4 * Self.maxConnections).run(for: Self.attackDuration)
                }
                let attack = try #require(attacks.first)
                print("[flood] \(attack.opened) connections opened (\(attack.refused) failed), up to \(4 * Self.maxConnections) held at once; server evicted \(harness.runtime.server.statistics.evicted)")
                #expect(attack.opened > 10 * Self.maxConnections)
                expectMaster(master, "flood")
                #expect(harness.runtime.server.statistics.open <= Self.maxConnections)
                await expectStillServing(harness)
            }
        }

        @Test func clientsThatNeverReadTheirAnswers() async throws {
            try await withBridge { harness in
                let port = harness.port
                let (master, attacks) = await underAttack(harness, attackers: 4) { _ in
                    NonReader(port: port).run(for: Self.attackDuration)
                }
                let requests = attacks.map(\.requests).reduce(0, +)
                let dropped = attacks.map(\.dropped).reduce(0, +)
                print("[non-readers] \(attacks.count) clients sent \(requests) requests without reading; the server dropped them \(dropped) times")
                #expect(dropped > 0, "a client that never reads is dropped")
                expectMaster(master, "non-readers")
                await expectStillServing(harness)
            }
        }
    }
}

// MARK: The well-behaved master

struct MasterReport: Sendable {
    var latencies = LatencyRecord()
    var reconnectLatencies = LatencyRecord()
    var wrongAnswers = 0
    var reconnects = 0
    /// The longest time the master went without an answer.
    var longestOutage = Duration.zero
    /// The share of the machine's CPU time the hypervisor gave to other guests during the run.
    var stolenShare = 0.0
}

/// A SCADA master polling block A 500 times a second with libmodbus. When the bridge closes its
/// connection (an eviction), it reconnects at once; a read's latency includes any reconnect.
struct WellBehavedMaster {
    let port: UInt16
    var period = Duration.milliseconds(2)
    /// Raised at the first answer.
    var answered: StopFlag?

    func run(until stop: StopFlag) -> MasterReport {
        var report = MasterReport()
        var client = try? ModbusClient(port: port)
        var lastAnswer = ContinuousClock.now
        while !stop.isRaised {
            let start = ContinuousClock.now
            var outcome = client?.read(0, 28) ?? .failed("not connected")
            var reconnected = false
            if case .failed = outcome {
                // Evicted (or never connected): one reconnect, within the same read.
                client = try? ModbusClient(port: port)
                report.reconnects += 1
                reconnected = true
                outcome = client?.read(0, 28) ?? .failed("cannot connect")
                if case .failed = outcome { client = nil }
            }
            let end = ContinuousClock.now
            report.longestOutage = max(report.longestOutage, end - lastAnswer)
            if case .registers(let values) = outcome {
                report.latencies.add(end - start)
                if reconnected { report.reconnectLatencies.add(end - start) }
                if values != ContractOracle.blockA { report.wrongAnswers += 1 }
                lastAnswer = end
                answered?.raise()
            } else if case .exception = outcome {
                report.wrongAnswers += 1
            }
            pace(period - (ContinuousClock.now - start))
        }
        return report
    }
}

// MARK: The network fuzzer

struct FuzzReport: Sendable {
    var frames = 0
    var connections = 0
    var connectFailures = 0
    var answersChecked = 0
    var garbageCloses = 0
    var unclosedGarbage = 0
    var truncatedEnds = 0
    var missingAnswers = 0
    var mismatchCount = 0
    var mismatches: [String] = []

    mutating func mismatch(_ problem: String, frame: [UInt8]) {
        mismatchCount += 1
        if mismatches.count < 5 { mismatches.append("\(problem) (request \(frame))") }
    }
}

/// Sends random and mutated MBAP frames in pipelined bursts, predicts with `FramingModel` which
/// frames the bridge must answer and when it must hang up, and checks every answer with `ContractOracle`.
struct NetworkFuzzer {
    let port: UInt16
    let seed: UInt64

    func run(frames target: Int) -> FuzzReport {
        lowerThreadPriority()
        var random = SeededGenerator(seed: seed)
        var report = FuzzReport()
        while report.frames < target {
            guard let connection = Connection(port: port) else {
                report.connectFailures += 1
                if report.connectFailures > 10 { break }
                continue
            }
            report.connections += 1
            var model = FramingModel()
            let bursts = Int.random(in: 1...100, using: &random)
            bursts: for _ in 0..<bursts where report.frames < target {
                // A burst of pipelined frames. The part up to the frame that makes the bridge hang
                // up goes first and all its answers are checked; then the rest, and the hang-up.
                // (Sent at once, the rest would still be unread when the bridge closes, and the
                // kernel's reset would destroy answers already on their way.)
                let count = random.chance(0.3) ? 1 : Int.random(in: 2...64, using: &random)
                var head: [UInt8] = []
                var answered: [[UInt8]] = []
                var tail: [UInt8] = []
                var answeredByTail: [[UInt8]] = []
                for _ in 0..<count {
                    let unit = Self.frame(&random)
                    if model.closed {
                        tail += unit
                        continue
                    }
                    let frames = model.feed(unit)
                    if model.closed {
                        tail += unit
                        answeredByTail = frames
                    } else {
                        head += unit
                        answered += frames
                    }
                }
                report.frames += count
                if !head.isEmpty && !connection.send(head) {
                    report.mismatch("the bridge closed a connection that sent only Modbus frames", frame: head)
                    break
                }
                for frame in answered {
                    switch connection.readAnswer() {
                    case .success(let response):
                        report.answersChecked += 1
                        if let problem = ContractOracle.check(response, for: frame, interval: 1) {
                            report.mismatch(problem, frame: frame)
                        }
                    case .failure(let error):
                        report.missingAnswers += 1
                        report.mismatch("no answer (\(error))", frame: frame)
                        break bursts
                    }
                }
                if model.closed {
                    _ = connection.send(tail)
                    // Frames completed by the last bytes before the bad header are answered, unless
                    // the reset of the hang-up overtakes their answers.
                    for frame in answeredByTail {
                        guard case .success(let response) = connection.readAnswer() else { break }
                        report.answersChecked += 1
                        if let problem = ContractOracle.check(response, for: frame, interval: 1) {
                            report.mismatch(problem, frame: frame)
                        }
                    }
                    if connection.closedByServer(within: .seconds(2)) {
                        report.garbageCloses += 1
                    } else {
                        report.unclosedGarbage += 1
                    }
                    break
                }
            }
            // Now and then hang up in the middle of a frame.
            if !model.closed && random.chance(0.3) {
                let frame = Self.read(&random)
                _ = connection.send(Array(frame.prefix(Int.random(in: 1..<frame.count, using: &random))))
                report.truncatedEnds += 1
            }
        }
        return report
    }

    static let addresses = [0, 1, 2, 18, 20, 26, 27, 28, 29, 99, 100, 101, 118, 126, 127, 128, 199, 200, 201, 205, 208, 209, 210, 300, 40000, 65534, 65535]
    static let counts = [1, 1, 2, 2, 4, 10, 27, 28, 29, 100, 125, 126, 127, 0, 255, 256, 2000, 65535]

    static func mbap(_ random: inout SeededGenerator, unit: UInt8, pdu: [UInt8]) -> [UInt8] {
        let length = pdu.count + 1
        return [random.byte(), random.byte(), 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), unit] + pdu
    }

    static func unit(_ random: inout SeededGenerator) -> UInt8 {
        random.chance(0.9) ? 1 : [0, 255, 2, 100, 247, random.byte()].randomElement(using: &random)!
    }

    static func word(_ value: Int) -> [UInt8] { [UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }

    /// A read (03 or 04), mostly near the blocks' edges.
    static func read(_ random: inout SeededGenerator) -> [UInt8] {
        let address = random.chance(0.8) ? addresses.randomElement(using: &random)! : Int(random.next() & 0xFFFF)
        let count = random.chance(0.8) ? counts.randomElement(using: &random)! : Int(random.next() & 0xFFFF)
        let function: UInt8 = random.chance(0.5) ? 0x03 : 0x04
        return mbap(&random, unit: unit(&random), pdu: [function] + word(address) + word(count))
    }

    /// One frame of a random kind (weights per thousand); about 1 in 40 has a header that is not Modbus.
    static func frame(_ random: inout SeededGenerator) -> [UInt8] {
        let kind = Int.random(in: 0..<1000, using: &random)
        switch kind {
        case 0..<520:
            return read(&random)
        case 520..<600:  // writes: refused with 0x01
            let function = [UInt8(0x05), 0x06, 0x0F, 0x10, 0x16, 0x17].randomElement(using: &random)!
            let data = random.bytes(Int.random(in: 4...20, using: &random))
            return mbap(&random, unit: unit(&random), pdu: [function] + data)
        case 600..<680:  // any other function, any payload
            var function = random.byte()
            while function == 0x03 || function == 0x04 { function = random.byte() }
            return mbap(&random, unit: unit(&random), pdu: [function] + random.bytes(Int.random(in: 0...20, using: &random)))
        case 680..<720:  // a read whose PDU is too long or too short
            var frame = read(&random)
            if random.chance(0.5) {
                frame += random.bytes(Int.random(in: 1...4, using: &random))
            } else {
                frame.removeLast(Int.random(in: 1...4, using: &random))
            }
            let length = frame.count - 6
            frame[4] = UInt8(length >> 8)
            frame[5] = UInt8(length & 0xFF)
            return frame
        case 720..<740:  // the largest frame a header can announce
            return mbap(&random, unit: unit(&random), pdu: random.bytes(253))
        case 740..<780:  // huge or zero counts
            let count = random.chance(0.2) ? 0 : Int.random(in: 126...65535, using: &random)
            let function: UInt8 = random.chance(0.5) ? 0x03 : 0x04
            return mbap(&random, unit: 1, pdu: [function] + word(Int(random.next() & 0xFFFF)) + word(count))
        case 780..<975:  // a read with one to three bytes changed, mostly in the PDU
            var frame = read(&random)
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let index = random.chance(0.1) ? Int.random(in: 0..<7, using: &random) : Int.random(in: 7..<frame.count, using: &random)
                frame[index] ^= UInt8.random(in: 1...255, using: &random)
            }
            return frame
        case 975..<985:  // a protocol id other than 0
            var frame = read(&random)
            frame[2 + Int.random(in: 0...1, using: &random)] = UInt8.random(in: 1...255, using: &random)
            return frame
        case 985..<995:  // a length no frame can have
            var frame = read(&random)
            let length = [0, 1, 255, 256, 1000, 65535].randomElement(using: &random)!
            frame[4] = UInt8(length >> 8)
            frame[5] = UInt8(length & 0xFF)
            return frame
        default:  // noise
            return random.bytes(Int.random(in: 1...40, using: &random))
        }
    }
}

// MARK: Slowloris

struct SlowlorisReport: Sendable {
    var connections = 0
    var bytes = 0
    var answersChecked = 0
    var evictions = 0
    var mismatches: [String] = []
}

/// Many connections, each sending well-formed reads one byte at a time; each answer is checked.
struct Slowloris {
    let port: UInt16
    let connections: Int
    let seed: UInt64

    final class Dribbler {
        var connection: Connection?
        var request: [UInt8] = []
        var sent = 0
    }

    func run(for duration: Duration) -> SlowlorisReport {
        lowerThreadPriority()
        var random = SeededGenerator(seed: seed &+ 1)
        var report = SlowlorisReport()
        let dribblers = (0..<connections).map { _ in Dribbler() }
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            for dribbler in dribblers {
                if dribbler.connection == nil {
                    dribbler.connection = Connection(port: port)
                    report.connections += 1
                }
                guard let connection = dribbler.connection else { continue }
                if dribbler.sent == dribbler.request.count {
                    let block = ContractOracle.blocks.randomElement(using: &random)!
                    let address = Int.random(in: block, using: &random)
                    let count = Int.random(in: 1...(block.upperBound - address), using: &random)
                    dribbler.request = NetworkFuzzer.mbap(&random, unit: 1, pdu: [0x03] + NetworkFuzzer.word(address) + NetworkFuzzer.word(count))
                    dribbler.sent = 0
                }
                guard connection.send([dribbler.request[dribbler.sent]], timeout: .milliseconds(100)) else {
                    report.evictions += 1
                    dribbler.connection = nil
                    dribbler.sent = dribbler.request.count
                    continue
                }
                report.bytes += 1
                dribbler.sent += 1
                guard dribbler.sent == dribbler.request.count else { continue }
                switch connection.readAnswer(timeout: .seconds(1)) {
                case .success(let response):
                    report.answersChecked += 1
                    if let problem = ContractOracle.check(response, for: dribbler.request, interval: 1), report.mismatches.count < 5 {
                        report.mismatches.append(problem)
                    }
                case .failure:
                    // Evicted for a newer connection while it dribbled: the contract allows that.
                    report.evictions += 1
                    dribbler.connection = nil
                }
            }
            pace(.milliseconds(2))
        }
        return report
    }
}

// MARK: Connection flood

struct FloodReport: Sendable {
    var opened = 0
    var refused = 0
}

/// Opens connections as fast as it can and holds up to `held` of them, four times the limit,
/// replacing the oldest: the bridge must keep evicting idle ones for the master.
///
/// In the release build the flood is unpaced. A debug or sanitized bridge accepts connections
/// several times more slowly than this thread opens them: the kernel's listen queue (128) then
/// overflows and drops every newcomer's SYN, the master's too, which retries after a second. That
/// measures the build, not the bridge, so there the flood is paced to what such a build accepts.
struct ConnectionFlood {
    let port: UInt16
    let held: Int

    static let pause: Duration = ReliabilityEnvironment.underSanitizer
        ? .milliseconds(2) : ReliabilityEnvironment.optimized ? .zero : .milliseconds(1)

    func run(for duration: Duration) -> FloodReport {
        lowerThreadPriority()
        var report = FloodReport()
        var open: [Connection] = []
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if Self.pause > .zero { pace(Self.pause) }
            if let connection = Connection(port: port) {
                open.append(connection)
                report.opened += 1
            } else {
                report.refused += 1
            }
            if open.count > held { open.removeFirst() }
        }
        return report
    }
}

// MARK: Clients that never read

struct NonReaderReport: Sendable {
    var requests = 0
    var dropped = 0
}

/// Pipelines reads of block A and never reads an answer, reconnecting when the bridge drops it.
struct NonReader {
    let port: UInt16

    func run(for duration: Duration) -> NonReaderReport {
        lowerThreadPriority()
        var report = NonReaderReport()
        let request: [UInt8] = [0, 1, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 28]
        let burst = Array([[UInt8]](repeating: request, count: 100).joined())
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            guard let connection = Connection(port: port) else { continue }
            while ContinuousClock.now < deadline {
                guard connection.send(burst, timeout: .milliseconds(200)) else {
                    report.dropped += 1
                    break
                }
                report.requests += 100
            }
        }
        return report
    }
}
