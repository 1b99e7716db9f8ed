import CMosquitto
import CSocketCalls
import Locking
import Logging
import Sockets
import Threading
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mosquitto_lib_init` is not thread-safe: a global's initializer runs exactly once (swift_once).
private let libraryInitialization: Int32 = mosquitto_lib_init()

/// A connection to one MQTT broker, kept up for as long as it runs.
///
/// One thread of its own (never Swift's cooperative pool) makes every libmosquitto call: it
/// connects, waits on the socket, reconnects with a capped exponential back-off (also when the
/// broker is down at the first attempt, which libmosquitto's own reconnect does not cover,
/// eclipse/mosquitto#1903), re-subscribes and calls `onConnect` after every accepted connection.
/// Callers only touch state behind a lock and wake the thread, so nothing a caller does waits for
/// the network, and no caller code runs inside a libmosquitto callback (eclipse/mosquitto#1175).
///
/// Messages:
/// - While connected, `publish` queues the message and the thread hands it to libmosquitto at once,
///   unless `handOverLimit` messages handed over are still unconfirmed: then it waits its turn,
///   in order, behind the outbox and the queue.
/// - While disconnected, messages go to an outbox that keeps only the latest per topic, sent in
///   the order of their last publication as soon as the broker accepts the next connection.
/// - Messages already handed to libmosquitto when a connection fails: QoS 0 ones not yet written
///   are lost (libmosquitto drops its queue on reconnect); QoS 1 and 2 ones that the broker has not
///   acknowledged are sent again by libmosquitto after the reconnect, possibly twice.
///
/// Call `start()`, and `shutdown()` at the end (the running thread keeps the connection alive);
/// as a `Service` both happen in `run()`.
public final class MQTTConnection: Sendable {
    public let configuration: MQTTConfiguration
    let logger: Logger
    let onConnect: (@Sendable (MQTTConnection) -> Void)?
    let finalMessage: MQTTMessage?
    let handle: Handle
    let wake: WakePipe
    let shared = Locked(Shared())

    /// Messages queued while connected before they are folded into the outbox: only reached when
    /// the network thread stalls, and keeps memory bounded then too.
    static let queueLimit = 4096

    /// At most this many messages are handed to libmosquitto and not yet confirmed (written, for
    /// QoS 0; acknowledged by the broker, for QoS 1 and 2): libmosquitto keeps a copy of each
    /// until then, so a backlog handed over at once is held twice. Far above the 20 QoS 1
    /// messages libmosquitto keeps in flight, so the limit does not slow the sending.
    static let handOverLimit = 256
    /// No more are handed over once the unconfirmed ones hold this many bytes (topics and payloads).
    static let handOverByteLimit = 256 * 1024
    /// A connection that starts with at least this many messages to send (the republication at
    /// every connection: discovery for many devices) returns malloc's free pages to the system once
    /// they are all sent. glibc keeps the heap such a burst freed (per thread arena) otherwise,
    /// which for 1,000 devices was 20 MiB of resident memory for the process's life
    /// (Docs/performance.md, "The MQTT face").
    static let trimAfterBacklog = 1000

    /// Makes a connection; nothing happens on the network until `start()`.
    /// - Parameters:
    ///   - finalMessage: published (retained if it says so) just before a clean `shutdown()`,
    ///     typically the "offline" status that the last will would have said.
    ///   - onConnect: called on the connection's thread after every connection the broker accepts
    ///     (after the subscriptions are renewed, before the outbox is sent), to publish the retained
    ///     state a restarted broker may have lost. It must return quickly and not block; `publish`
    ///     from it is fine.
    public init(
        configuration: MQTTConfiguration, logger: Logger, finalMessage: MQTTMessage? = nil,
        onConnect: (@Sendable (MQTTConnection) -> Void)? = nil
    ) throws(MQTTError) {
        do { try configuration.validate() } catch { throw .configuration(error) }
        if let finalMessage, let problem = MQTTTopic.publishProblem(finalMessage.topic) {
            throw .invalidTopic(finalMessage.topic, problem)
        }
        _ = libraryInitialization
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "broker"] = "\(configuration.broker)"
        self.logger = logger
        self.finalMessage = finalMessage
        self.onConnect = onConnect
        handle = try Handle(configuration: configuration)
        do { wake = try WakePipe() } catch {
            mosquitto_destroy(handle.pointer)
            throw error
        }
    }

    deinit {
        // The thread holds the connection while it runs, so it has ended (or never started).
        if !shared.withLock({ $0.handleDestroyed }) { mosquitto_destroy(handle.pointer) }
        wake.close()
    }

    // MARK: - Caller side

    /// Starts connecting in the background; returns at once. Calling it again does nothing.
    public func start() {
        let starting = shared.withLock { shared -> Bool in
            guard case .idle = shared.phase else { return false }
            shared.phase = .running
            return true
        }
        guard starting else { return }
        BlockingThread.detached { self.runNetworkThread() }
    }

    /// Sends `message` as soon as the broker can take it. Never waits and never fails because the
    /// broker is down; see the type's documentation for what an outage does to messages.
    public func publish(_ message: MQTTMessage) throws(MQTTError) {
        if let problem = MQTTTopic.publishProblem(message.topic) { throw .invalidTopic(message.topic, problem) }
        guard message.payload.count <= Int(sec1000_mqtt_max_payload) else { throw .payloadTooLarge(message.payload.count) }
        try shared.withLock { shared throws(MQTTError) in
            switch shared.phase {
            case .stopping, .stopped: throw .shutDown
            case .idle, .running: break
            }
            if shared.connected && shared.queue.count < Self.queueLimit {
                shared.queue.append(message)
            } else {
                // Folding the queue first keeps the order per topic: the outbox goes out before the queue.
                for queued in shared.queue where shared.outbox.put(queued) { shared.statistics.replacedInOutbox += 1 }
                shared.queue.removeAll()
                if shared.outbox.put(message) { shared.statistics.replacedInOutbox += 1 }
                shared.statistics.outboxTopics = shared.outbox.count
            }
        }
        wake.signal()
    }

    /// `publish(MQTTMessage(topic:payload:qos:retain:))`.
    public func publish(topic: String, payload: [UInt8], qos: MQTTQoS = .atMostOnce, retain: Bool = false) throws(MQTTError) {
        try publish(MQTTMessage(topic: topic, payload: payload, qos: qos, retain: retain))
    }

    /// `publish` with a UTF-8 text payload.
    public func publish(topic: String, text: String, qos: MQTTQoS = .atMostOnce, retain: Bool = false) throws(MQTTError) {
        try publish(MQTTMessage(topic: topic, payload: text, qos: qos, retain: retain))
    }

    /// Subscribes to `filter` on every connection, from now until the stream's consumer stops.
    /// The stream buffers at most `bufferSize` messages and then drops the oldest, so a slow
    /// consumer cannot grow memory (`statistics.droppedIncoming` counts them). Retained messages
    /// arrive with `retain` set, after every (re)subscription.
    public func subscribe(
        _ filter: String, qos: MQTTQoS = .atLeastOnce, bufferSize: Int = 256
    ) throws(MQTTError) -> AsyncStream<MQTTMessage> {
        if let problem = MQTTTopic.filterProblem(filter) { throw .invalidFilter(filter, problem) }
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTMessage.self, bufferingPolicy: .bufferingNewest(max(1, bufferSize)))
        let id = try shared.withLock { shared throws(MQTTError) -> Int in
            switch shared.phase {
            case .stopping, .stopped: throw .shutDown
            case .idle, .running: break
            }
            shared.nextID += 1
            shared.subscribers[shared.nextID] = Subscriber(filter: filter, qos: qos, continuation: continuation)
            return shared.nextID
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.shared.withLock { _ = $0.subscribers.removeValue(forKey: id) }
            self.wake.signal()
        }
        wake.signal()
        return stream
    }

    /// The state now.
    public var state: MQTTConnectionState { shared.withLock { $0.state } }

    /// Whether the broker has accepted the current connection.
    public var isConnected: Bool { shared.withLock { $0.connected } }

    public var statistics: MQTTConnectionStatistics { shared.withLock { $0.statistics } }

    /// Every state change from now on, starting with the current state; keeps the newest 64 if the
    /// consumer falls behind. Ends after shutdown.
    public func stateChanges() -> AsyncStream<MQTTConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTConnectionState.self, bufferingPolicy: .bufferingNewest(64))
        let (id, current, open) = shared.withLock { shared -> (Int, MQTTConnectionState, Bool) in
            shared.nextID += 1
            if case .stopped = shared.phase { return (shared.nextID, shared.state, false) }
            shared.observers[shared.nextID] = continuation
            return (shared.nextID, shared.state, true)
        }
        continuation.yield(current)
        if open {
            continuation.onTermination = { [weak self] _ in self?.shared.withLock { _ = $0.observers.removeValue(forKey: id) } }
        } else {
            continuation.finish()
        }
        return stream
    }

    /// Publishes `finalMessage` (the one given at init unless another is given here) and what is
    /// still queued, then disconnects cleanly, so the broker does NOT publish the last will; waits
    /// for the thread to end (at most about 3 s for the goodbye). Without a connection it just
    /// stops; the outbox is dropped. Calling it again, or concurrently, waits for the same end.
    public func shutdown(publishing finalMessage: MQTTMessage?) async {
        enum Action { case wait, finishNow([Subscriber], [AsyncStream<MQTTConnectionState>.Continuation]), done }
        let action = shared.withLock { shared -> Action in
            switch shared.phase {
            case .idle:
                shared.phase = .stopped
                shared.state = .shutDown
                defer { shared.subscribers = [:]; shared.observers = [:] }
                return .finishNow(Array(shared.subscribers.values), Array(shared.observers.values))
            case .running:
                shared.phase = .stopping(finalMessage)
                return .wait
            case .stopping: return .wait
            case .stopped: return .done
            }
        }
        switch action {
        case .done: return
        case .finishNow(let subscribers, let observers):
            for observer in observers { observer.yield(.shutDown); observer.finish() }
            for subscriber in subscribers { subscriber.continuation.finish() }
            return
        case .wait:
            wake.signal()
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let finished = shared.withLock { shared -> Bool in
                    if case .stopped = shared.phase { return true }
                    shared.stopWaiters.append(continuation)
                    return false
                }
                if finished { continuation.resume() }
            }
        }
    }

    /// For tests: shuts the socket down under libmosquitto, as a dead network or a crashed
    /// process would, so the broker sees the connection end without a DISCONNECT.
    func cutConnectionForTesting() {
        shared.withLock { $0.cutSocket = true }
        wake.signal()
    }

    /// `shutdown(publishing:)` with the final message given at init.
    public func shutdown() async {
        await shutdown(publishing: finalMessage)
    }
}

// MARK: - State shared between callers and the network thread

extension MQTTConnection {
    enum Phase {
        case idle
        case running
        case stopping(MQTTMessage?)
        case stopped
    }

    struct Subscriber {
        let filter: String
        let qos: MQTTQoS
        let continuation: AsyncStream<MQTTMessage>.Continuation
    }

    struct Shared {
        var phase = Phase.idle
        /// Set only by the network thread: the broker has accepted the current connection.
        var connected = false
        var state = MQTTConnectionState.idle
        /// To send now, in order (while connected).
        var queue: [MQTTMessage] = []
        /// To send once connected, the latest per topic.
        var outbox = Outbox()
        var subscribers: [Int: Subscriber] = [:]
        var observers: [Int: AsyncStream<MQTTConnectionState>.Continuation] = [:]
        var nextID = 0
        var statistics = MQTTConnectionStatistics()
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        /// The network thread has destroyed the libmosquitto client (and closed its socket).
        var handleDestroyed = false
        /// Tests: cut the socket as a network failure or a crash would (no DISCONNECT).
        var cutSocket = false
    }

    /// The libmosquitto client. Configured at init; afterwards used by the network thread alone.
    struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer

        init(configuration: MQTTConfiguration) throws(MQTTError) {
            // Clean session: every connection subscribes afresh, so the broker need keep nothing.
            guard let pointer = mosquitto_new(configuration.clientID, true, nil) else {
                throw .setupFailed("mosquitto_new: \(String(cString: strerror(errno)))")
            }
            self.pointer = pointer
            do { try configure(configuration) } catch {
                mosquitto_destroy(pointer)
                throw error
            }
        }

        private func configure(_ configuration: MQTTConfiguration) throws(MQTTError) {
            func check(_ status: Int32, _ what: String) throws(MQTTError) {
                guard status == success else { throw .setupFailed("\(what): \(String(cString: mosquitto_strerror(status)))") }
            }
            if let username = configuration.username {
                try check(mosquitto_username_pw_set(pointer, username, configuration.password), "username and password")
            }
            if let will = configuration.will {
                try check(
                    will.payload.withUnsafeBytes {
                        mosquitto_will_set(pointer, will.topic, Int32($0.count), $0.baseAddress, will.qos.rawValue, will.retain)
                    }, "last will")
            }
            if configuration.broker.tls {
                if configuration.caFile == nil {
                    try check(mosquitto_int_option(pointer, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "the system's certificate authorities")
                }
                // Key passwords are not supported: libmosquitto would ask on the terminal.
                try check(
                    mosquitto_tls_set(pointer, configuration.caFile, nil, configuration.certificateFile, configuration.keyFile, nil),
                    "TLS files")
            }
            mosquitto_connect_callback_set(pointer) { _, context, code in
                LoopContext.from(context)?.connack = code
            }
            mosquitto_disconnect_callback_set(pointer) { _, context, code in
                let saved = errno
                LoopContext.from(context)?.disconnect = (code, saved)
            }
            mosquitto_publish_callback_set(pointer) { _, context, mid in
                LoopContext.from(context)?.confirmed.append(mid)
            }
            mosquitto_message_callback_set(pointer) { _, context, message in
                guard let message, let loop = LoopContext.from(context) else { return }
                loop.connection.deliver(message.pointee)
            }
            mosquitto_log_callback_set(pointer) { _, context, level, text in
                // The reason behind a TLS failure is only ever told to the log callback.
                guard let text, level & Int32(sec1000_mosq_log_err) != 0 else { return }
                LoopContext.from(context)?.lastError = String(cString: text)
            }
        }
    }

    /// What libmosquitto's callbacks report to the network thread, on that thread.
    final class LoopContext {
        unowned let connection: MQTTConnection
        var connack: Int32?
        var disconnect: (code: Int32, errno: Int32)?
        var lastError: String?
        /// Messages handed to libmosquitto and not yet confirmed by its publish callback, by id.
        private(set) var unconfirmed: [Int32: (qos: MQTTQoS, bytes: Int)] = [:]
        private(set) var unconfirmedBytes = 0
        /// Ids the publish callback reported, settled after the call that ran it: for QoS 0 that
        /// may be `mosquitto_publish` itself, before its id is recorded.
        var confirmed: [Int32] = []
        /// `unconfirmed.count` as last written to the statistics.
        var reportedUnconfirmed = 0
        /// This connection began with a backlog of `trimAfterBacklog` or more: trim once it is sent.
        var trimWhenSent = false

        init(connection: MQTTConnection) { self.connection = connection }

        func handedOver(mid: Int32, qos: MQTTQoS, bytes: Int) {
            unconfirmed[mid] = (qos, bytes)
            unconfirmedBytes += bytes
        }

        func settle() {
            for mid in confirmed {
                if let entry = unconfirmed.removeValue(forKey: mid) { unconfirmedBytes -= entry.bytes }
            }
            confirmed.removeAll(keepingCapacity: true)
        }

        /// After a lost connection: libmosquitto drops the QoS 0 messages it has not written when it
        /// connects again, without a callback. It keeps QoS 1 and 2 ones and sends them again.
        func forgetUnwritten() {
            settle()
            for (mid, entry) in unconfirmed where entry.qos == .atMostOnce {
                unconfirmed[mid] = nil
                unconfirmedBytes -= entry.bytes
            }
        }

        static func from(_ pointer: UnsafeMutableRawPointer?) -> LoopContext? {
            pointer.map { Unmanaged<LoopContext>.fromOpaque($0).takeUnretainedValue() }
        }
    }
}

let success = Int32(MOSQ_ERR_SUCCESS.rawValue)

extension MQTTMessage {
    /// What counts against `MQTTConnection.handOverByteLimit`.
    var handOverBytes: Int { payload.count + topic.utf8.count }
}

/// A pipe the network thread polls beside the broker's socket, so callers can wake it.
struct WakePipe: Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws(MQTTError) {
        var fds: [Int32] = [-1, -1]
        guard pipe2(&fds, Int32(O_CLOEXEC | O_NONBLOCK)) == 0 else {
            throw .setupFailed("pipe2: \(String(cString: strerror(errno)))")
        }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    /// A full pipe already wakes the thread, so a failed write changes nothing.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }

    func close() {
        _ = closeDescriptor(readEnd)
        _ = closeDescriptor(writeEnd)
    }
}

private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
