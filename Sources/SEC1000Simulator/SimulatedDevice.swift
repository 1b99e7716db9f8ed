#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Hex
import Logging
import SEC1000Protocol
import Sockets
import Threading
import Locking

/// What the simulated device does and how it misbehaves.
public struct SimulatorConfiguration: Sendable {
    /// Where to listen; port 0 picks a free port (see `SimulatedDevice.port`).
    public var listen: SocketAddress
    public var faults: FaultRates
    /// Seeds fault decisions so a run can be replayed; `nil` seeds from the clock.
    public var seed: UInt64?
    public var model: MeasurementModel
    /// Answer every measurements request with the real capture from the protocol notes.
    public var replayCapture: Bool
    /// The export settings the device starts with.
    public var settings: ExportSettings
    public var meterMode: MeterMode
    /// The status byte sent after a set: 0x06 (ACK) or 0x15 (NAK, also observed after sets that took effect).
    public var setStatus: UInt8
    /// Acknowledge sets without applying them, so a read-back disagrees.
    public var ignoreSets: Bool
    /// Close the connection on a set without answering or applying it.
    public var dropSets: Bool
    /// How long a connection may take to send its request.
    public var requestTimeout: Duration
    /// The longest a hung connection is held open.
    public var hangLimit: Duration
    /// How long a set (0x42, 0x40, 0x33, 0x28) takes before it takes effect and is answered; a
    /// real device has been seen taking seconds.
    public var setDelay: Duration = .zero
    /// Commands the device never answers: it closes the connection (a firmware that lacks 0x43).
    public var unanswered: Set<Command> = []

    public init(
        listen: SocketAddress = SocketAddress(host: "127.0.0.1", port: 1234), faults: FaultRates = .none,
        seed: UInt64? = nil, model: MeasurementModel = MeasurementModel(), replayCapture: Bool = false,
        settings: ExportSettings = ExportSettings(mode: .byValue, totalCapacity: 8000, ctRatio: 1, exportLimit: 5000),
        meterMode: MeterMode = .sumOfPhases, setStatus: UInt8 = 0x06, ignoreSets: Bool = false, dropSets: Bool = false,
        requestTimeout: Duration = .seconds(10), hangLimit: Duration = .seconds(120)
    ) {
        self.listen = listen
        self.faults = faults
        self.seed = seed
        self.model = model
        self.replayCapture = replayCapture
        self.settings = settings
        self.meterMode = meterMode
        self.setStatus = setStatus
        self.ignoreSets = ignoreSets
        self.dropSets = dropSets
        self.requestTimeout = requestTimeout
        self.hangLimit = hangLimit
    }
}

/// One connection as the device saw it.
public struct RequestRecord: Sendable {
    public let connection: Int
    public let opened: ContinuousClock.Instant
    public let closed: ContinuousClock.Instant
    /// What was asked, or `nil` when no valid request arrived.
    public let request: Request?
    /// The fault injected, if any.
    public let fault: Fault?
    /// Connections open at once, this one included, when it opened. A connection counts until
    /// its client closes it, however late the thread serving it notices.
    public let concurrent: Int
    /// The measurements of a valid answer to a measurements request, when one was sent (not the
    /// values of the `implausible` fault).
    public let measurementsSent: Measurements?
    /// When the answer's bytes were handed to the socket, if an answer was sent.
    public let answered: ContinuousClock.Instant?
}

/// The measurements the real capture decodes to.
public let capturedMeasurements = Measurements(
    voltages: [2410, 2404, 2409], currents: [480, 390, 508], powers: [295, -114, -532],
    meterPower: -351, invertersPower: 3386)

/// A simulated SEC1000 on a TCP port: the protocol byte for byte, its known faults on demand.
///
/// It serves each connection on its own thread, as a real device would accept them, so a client
/// that opens two transactions at once is caught (see `records` and `maximumConcurrency`).
public final class SimulatedDevice: Sendable {
    private struct State {
        var configuration: SimulatorConfiguration
        var random: SplitMix64
        var fixed: Measurements?
        var nextConnection = 0
        /// The descriptors of the connections being served, by connection number.
        var serving: [Int: Int32] = [:]
        var maximumConcurrency = 0
        var records: [RequestRecord] = []
        var sentValid: Set<Measurements> = []
        var stopped = false
    }

    public let port: UInt16
    private let listener: TCPListener
    private let wake = WakeSignal()
    private let state: Locked<State>
    private let acceptThread = Locked<BlockingThread?>(nil)
    private let logger: Logger

    /// Binds the listening socket; `start()` begins answering.
    public init(configuration: SimulatorConfiguration, logger: Logger = Logger(label: "sec1000.simulator")) throws(SocketError) {
        listener = try TCPListener(bind: configuration.listen)
        port = listener.port
        var seed = configuration.seed ?? UInt64(ContinuousClock.now.hashValue.magnitude)
        if seed == 0 { seed = 1 }
        state = Locked(State(configuration: configuration, random: SplitMix64(state: seed)))
        self.logger = logger
    }

    deinit { stop() }

    /// Starts the accept loop on its own thread.
    public func start() {
        acceptThread.withLock { thread in
            guard thread == nil else { return }
            thread = BlockingThread { [self] in acceptLoop() }
        }
        logger.info("simulated SEC1000 listening", metadata: ["port": "\(port)"])
    }

    /// Stops accepting and ends every open connection. Idempotent.
    public func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
        let thread = acceptThread.withLock { thread -> BlockingThread? in
            defer { thread = nil }
            return thread
        }
        thread?.join()
    }

    // MARK: Test and operator controls

    /// Changes the fault rates from now on.
    public func setFaults(_ faults: FaultRates) { state.withLock { $0.configuration.faults = faults } }

    /// Answers with exactly `measurements` from now on (`nil` returns to the model).
    public func setMeasurements(_ measurements: Measurements?) { state.withLock { $0.fixed = measurements } }

    /// Changes what a set does: ignored (acknowledged, not applied) or dropped (no answer).
    public func setSetBehaviour(ignore: Bool, drop: Bool) {
        state.withLock {
            $0.configuration.ignoreSets = ignore
            $0.configuration.dropSets = drop
        }
    }

    /// Changes how long a set takes, and which commands go unanswered.
    public func setCommandBehaviour(setDelay: Duration, unanswered: Set<Command> = []) {
        state.withLock {
            $0.configuration.setDelay = setDelay
            $0.configuration.unanswered = unanswered
        }
    }

    /// The export settings the device holds now.
    public var settings: ExportSettings { state.withLock { $0.configuration.settings } }
    public var meterMode: MeterMode { state.withLock { $0.configuration.meterMode } }

    /// Every finished connection, oldest first.
    public var records: [RequestRecord] { state.withLock { $0.records } }

    /// The most connections ever open at once (see `RequestRecord.concurrent`).
    public var maximumConcurrency: Int { state.withLock { $0.maximumConcurrency } }

    /// Every measurements value the device sent in a valid frame (the soak test's oracle).
    public var validMeasurementsSent: Set<Measurements> { state.withLock { $0.sentValid } }

    // MARK: Serving

    private func acceptLoop() {
        while true {
            var entries = [pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wake.readDescriptor, events: Int16(POLLIN), revents: 0)]
            _ = pollDescriptors(&entries, timeout: nil)
            if state.withLock({ $0.stopped }) { return }
            guard entries[0].revents != 0 else { continue }
            while let fd = try? listener.acceptDescriptor() {
                // Stamped here, not on the connection's new thread, which a busy machine may start late.
                let opened = ContinuousClock.now
                let (id, concurrent) = state.withLock { state -> (Int, Int) in
                    state.nextConnection += 1
                    // Whether the client was still in a transaction is what matters, not whether a
                    // busy machine has yet run the thread that will see its close.
                    let open = state.serving.values.filter { !clientHasClosed($0) }.count + 1
                    state.serving[state.nextConnection] = fd
                    state.maximumConcurrency = max(state.maximumConcurrency, open)
                    return (state.nextConnection, open)
                }
                BlockingThread.detached { [self] in
                    serve(fd, id: id, concurrent: concurrent, opened: opened)
                }
            }
        }
    }

    private func serve(_ fd: Int32, id: Int, concurrent: Int, opened: ContinuousClock.Instant) {
        var request: Request?
        var fault: Fault?
        var measurementsSent: Measurements?
        var answered: ContinuousClock.Instant?
        defer {
            // Stamped before the close, so that a close by the device is never recorded late.
            let record = RequestRecord(connection: id, opened: opened, closed: .now, request: request,
                                       fault: fault, concurrent: concurrent, measurementsSent: measurementsSent,
                                       answered: answered)
            state.withLock {
                $0.serving[id] = nil
                $0.records.append(record)
            }
            close(fd)
        }
        let configuration = state.withLock { $0.configuration }
        let deadline = opened + configuration.requestTimeout
        guard let head = receive(fd, count: 2, until: deadline), head[0] == 0,
              let rest = receive(fd, count: RequestDecoder.size(lengthByte: head[1]) - 2, until: deadline)
        else {
            logger.info("connection closed without a request", metadata: ["connection": "\(id)"])
            return
        }
        let bytes = head + rest
        do {
            request = try RequestDecoder.decode(bytes)
        } catch {
            logger.warning("bad request", metadata: ["connection": "\(id)", "error": "\(error)"])
            return
        }
        guard let request else { return }
        let (setDelay, unanswered) = state.withLock { ($0.configuration.setDelay, $0.configuration.unanswered) }
        if unanswered.contains(request.command) { return }
        if request.isSet, setDelay > .zero, !sleep(setDelay) { return }
        fault = chooseFault(for: request)
        logger.info("request", metadata: [
            "connection": "\(id)", "command": "\(request.command)", "bytes": "\(bytes.hexDescription)",
            "fault": "\(fault?.rawValue ?? "none")",
        ])
        switch fault {
        case .drop?:
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            return
        case .hang?:
            waitForClose(fd, until: .now + configuration.hangLimit)
            return
        case .slow?:
            if !sleep(configuration.faults.delay) { return }
        default:
            break
        }
        guard var answer = answer(to: request, fault: fault) else { return }
        switch fault {
        case .badChecksum?:
            answer[answer.count - 1] &+= 1
        case .truncate?:
            let cut = state.withLock { Int.random(in: 1..<answer.count, using: &$0.random) }
            answer = Array(answer.prefix(cut))
        default:
            break
        }
        answered = .now
        _ = answer.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        // An implausible frame decodes, but is no answer a client may use.
        if request == .readMeasurements, fault != .implausible,
           case .measurements(let m)? = try? ResponseDecoder.decode(answer, for: .readMeasurements) {
            measurementsSent = m
        }
        // A truncated answer ends with the close; otherwise let the client read and close first.
        if fault != .truncate { waitForClose(fd, until: .now + .milliseconds(200)) }
    }

    private func chooseFault(for request: Request) -> Fault? {
        state.withLock { state in
            let rates = state.configuration.faults
            let isRead = request == .readMeasurements
            let candidates: [(Fault, Double)] = [
                (.drop, rates.drop), (.hang, rates.hang), (.shortAnswer, isRead ? rates.shortAnswer : 0),
                (.badChecksum, rates.badChecksum), (.truncate, rates.truncate),
                (.zeroPower, isRead ? rates.zeroPower : 0), (.implausible, isRead ? rates.implausible : 0),
                (.slow, rates.slow),
            ]
            for (fault, rate) in candidates where rate > 0 {
                if Double.random(in: 0..<1, using: &state.random) < rate { return fault }
            }
            return nil
        }
    }

    /// The answer frame, with the device state updated; `nil` to close without answering.
    private func answer(to request: Request, fault: Fault?) -> [UInt8]? {
        state.withLock { state -> [UInt8]? in
            let configuration = state.configuration
            switch request {
            case .readMeasurements:
                if fault == .shortAnswer {
                    return ResponseEncoder.encode(.status(command: .readMeasurements, status: 0x15))
                }
                var m = state.fixed ?? (configuration.replayCapture
                    ? capturedMeasurements : configuration.model.measurements(at: currentUnixTime()))
                if fault == .zeroPower { m.invertersPower = 0 }
                if fault == .implausible {
                    // A valid frame, but not a value a client may ever serve: kept out of `sentValid`.
                    return ResponseEncoder.encode(.measurements(m.madeImplausible))
                }
                if fault != .badChecksum && fault != .truncate { state.sentValid.insert(m) }
                return ResponseEncoder.encode(.measurements(m))
            case .readExportSettings:
                return ResponseEncoder.encode(.exportSettings(configuration.settings))
            case .setClock:
                return ResponseEncoder.encode(.status(command: .setClock, status: 0x03))
            case .setExportLimit(let capacity, let limit, let meterMode):
                if configuration.dropSets { return nil }
                if !configuration.ignoreSets {
                    state.configuration.settings.totalCapacity = capacity
                    state.configuration.settings.exportLimit = limit
                    state.configuration.meterMode = meterMode
                }
                return ResponseEncoder.encode(.status(command: .setExportLimit, status: configuration.setStatus))
            case .setControl(let mode, let on):
                if configuration.dropSets { return nil }
                if !configuration.ignoreSets {
                    if on {
                        state.configuration.settings.modeByte = mode.rawValue
                    } else if state.configuration.settings.modeByte == mode.rawValue {
                        state.configuration.settings.modeByte = ControlMode.off.rawValue
                    }
                }
                return ResponseEncoder.encode(.status(command: request.command, status: configuration.setStatus))
            }
        }
    }

    // MARK: Socket helpers (raw descriptors, so every wait also watches the stop signal)

    private func receive(_ fd: Int32, count: Int, until deadline: ContinuousClock.Instant) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: max(count, 1))
        while bytes.count < count {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, count - bytes.count, Int32(MSG_DONTWAIT)) }
            if got > 0 { bytes += buffer[0..<got]; continue }
            if got == 0 { return nil }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return nil }
            guard waitReadable(fd, until: deadline) else { return nil }
        }
        return bytes
    }

    /// Waits until `fd` is readable; `false` on the deadline or a stop.
    private func waitReadable(_ fd: Int32, until deadline: ContinuousClock.Instant) -> Bool {
        let remaining = deadline - .now
        guard remaining > .zero else { return false }
        var entries = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.readDescriptor, events: Int16(POLLIN), revents: 0)]
        _ = pollDescriptors(&entries, timeout: remaining)
        return entries[1].revents == 0 && entries[0].revents != 0
    }

    /// Holds the connection until the peer closes it, the deadline passes or the device stops.
    private func waitForClose(_ fd: Int32, until deadline: ContinuousClock.Instant) {
        var buffer = [UInt8](repeating: 0, count: 256)
        while waitReadable(fd, until: deadline) {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 256, Int32(MSG_DONTWAIT)) }
            if got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) { return }
        }
    }

    /// Whether the client of `fd` has closed its end (or reset it); never blocks.
    private func clientHasClosed(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let got = recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    }

    /// Sleeps for `duration` unless the device stops first; `false` if it stopped.
    private func sleep(_ duration: Duration) -> Bool {
        var entries = [pollfd(fd: wake.readDescriptor, events: Int16(POLLIN), revents: 0)]
        _ = pollDescriptors(&entries, timeout: duration)
        return entries[0].revents == 0
    }
}

func currentUnixTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

extension Request {
    /// Whether the request changes the device (a set of the limit, a control source or the clock).
    var isSet: Bool { self != .readMeasurements && self != .readExportSettings }
}
