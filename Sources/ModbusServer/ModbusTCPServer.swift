#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Hex
import CModbus
import Logging
import Sockets
import Threading
import Locking
import Synchronization

/// How the server treats its clients.
public struct ServerConfiguration: Sendable {
    public var listen: SocketAddress
    /// Open client connections at most. At the limit a newcomer takes the place of the newest
    /// connection that has not sent a request yet; if every connection has, the newcomer is refused.
    /// A connection that has sent requests, or waits for a write, is never closed for a newcomer.
    public var maxConnections: Int
    /// Open connections from one client address at most; a newcomer beyond it is refused.
    public var maxConnectionsPerAddress: Int
    /// Descriptors the server leaves free for the rest of the program (its device connections and
    /// files): a connection accepted into them is closed at once and accepting pauses.
    public var reservedDescriptors: Int
    /// A connection with no complete request for this long is closed.
    public var idleTimeout: Duration
    /// What function 43 / MEI type 14 answers; `nil` refuses the function (0x01).
    public var identification: DeviceIdentification?
    /// A deferred write whose outcome has not come within this long is answered 0x0B by the
    /// server itself, and its completion marked abandoned; `nil` waits as long as the bank takes.
    public var writeTimeout: Duration?

    public init(
        listen: SocketAddress, maxConnections: Int = 64, maxConnectionsPerAddress: Int? = nil,
        idleTimeout: Duration = .seconds(60), identification: DeviceIdentification? = nil, reservedDescriptors: Int = 0,
        writeTimeout: Duration? = nil
    ) {
        self.writeTimeout = writeTimeout
        self.listen = listen
        self.maxConnections = max(1, maxConnections)
        self.maxConnectionsPerAddress = max(1, maxConnectionsPerAddress ?? Self.defaultMaxConnectionsPerAddress)
        self.reservedDescriptors = max(0, reservedDescriptors)
        self.idleTimeout = idleTimeout
        self.identification = identification
    }

    /// Enough for a master that opens a few connections, too few for one host to fill the default table.
    public static let defaultMaxConnectionsPerAddress = 16
}

/// Counters of what the server has done, for logs, tests and benchmarks.
public struct ServerStatistics: Sendable, Equatable {
    public var accepted = 0
    /// Connections closed for a newcomer at the connection limit.
    public var evicted = 0
    /// Newcomers closed at once: the limit was reached and no connection could make room, or their
    /// address had its share, or the descriptors left were the program's reserve.
    public var refused = 0
    /// Times accepting paused because `accept` failed (EMFILE, ENFILE, ...) or descriptors ran low.
    public var acceptPauses = 0
    public var idleClosed = 0
    public var garbageClosed = 0
    public var requests = 0
    public var exceptions = 0
    public var open = 0
    /// Requests by function code, and exceptions answered by exception code.
    public var requestsByFunction: [UInt8: Int] = [:]
    public var exceptionsByCode: [UInt8: Int] = [:]
}

/// A Modbus TCP server on libmodbus that serves a `RegisterBank`.
///
/// One thread owns the listening socket and every client: it waits in `poll()`, frames requests
/// itself (so a client that sends half a frame delays nobody), lets `decide` judge each request,
/// and answers through `modbus_reply` or `modbus_reply_exception`. It knows nothing of the SEC1000.
public final class ModbusTCPServer: Sendable {
    public let configuration: ServerConfiguration
    /// The port actually bound (useful with port 0).
    public let port: UInt16

    private let listener: TCPListener
    private let bank: any RegisterBank
    private let logger: Logger
    private let wake = WakeSignal()
    private let stopping = Atomic<Bool>(false)
    private let thread = Locked<BlockingThread?>(nil)
    private let stats = Locked(ServerStatistics())
    private let completions: CompletionQueue

    /// Binds the listening socket; `start()` begins serving.
    public init(configuration: ServerConfiguration, bank: any RegisterBank, logger: Logger) throws(SocketError) {
        self.configuration = configuration
        self.listener = try TCPListener(bind: configuration.listen)
        self.port = listener.port
        self.bank = bank
        self.logger = logger
        self.completions = CompletionQueue(wake: wake)
    }

    public var statistics: ServerStatistics { stats.withLock { $0 } }

    /// Starts the network thread. Idempotent.
    public func start() {
        thread.withLock { thread in
            guard thread == nil else { return }
            thread = BlockingThread { [self] in
                var loop = ServerLoop(server: self)
                loop.run()
            }
        }
    }

    /// Closes every connection and the listening socket's service, and waits for the thread. Idempotent.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        wake.signal()
        let running = thread.withLock { thread -> BlockingThread? in
            defer { thread = nil }
            return thread
        }
        running?.join()
    }

    /// The state of the network thread; lives only on that thread.
    private struct ServerLoop: ~Copyable {
        struct Client {
            let id: UInt64
            let fd: Int32
            let peer: SocketAddress
            var buffer: [UInt8] = []
            var lastRequest: ContinuousClock.Instant
            /// Complete, well-framed requests received; a client with none may make room for a newcomer.
            var requests = 0
            /// A write the bank is carrying out; this client's later requests wait for its answer.
            var pendingWrite: [UInt8]?
            /// Since when, and the flag that tells the bank when nobody waits for it any more.
            var pendingSince: ContinuousClock.Instant = .now
            var requester: WriteCompletion.Requester?
        }

        let server: ModbusTCPServer
        let context: OpaquePointer
        let mapping: UnsafeMutablePointer<modbus_mapping_t>
        var clients: [Client] = []
        var nextClientID: UInt64 = 1
        /// One round reads at most one maximal ADU (260 bytes) from a client: a client that pipelines
        /// requests gets a few answers per round, and the others are served in between.
        var scratch = [UInt8](repeating: 0, count: Int(sec1000_modbus_tcp_max_adu_length))
        var registers = [UInt16](repeating: 0, count: 125)
        /// Repeated events of one kind from one address are logged once, then summarized.
        var logLimiter = LogRateLimiter<ServerEvent>()
        /// While set, the listener is left out of `poll()`: accepting failed, and retrying at once would spin.
        var acceptPausedUntil: ContinuousClock.Instant?
        var acceptPause = Self.firstAcceptPause
        static let firstAcceptPause = Duration.milliseconds(100)
        static let longestAcceptPause = Duration.seconds(1)
        /// The soft descriptor limit, for the reserve check.
        let descriptorLimit: Int

        init(server: ModbusTCPServer) {
            self.server = server
            // The context only formats replies; each client's socket is set before use.
            context = modbus_new_tcp("0.0.0.0", 0)!
            // Both tables span the whole address space, so the bank's values can go where the request points.
            mapping = modbus_mapping_new(0, 0, 65536, 65536)!
            descriptorLimit = descriptorLimits().soft
        }

        deinit {
            modbus_mapping_free(mapping)
            modbus_set_socket(context, -1)
            modbus_free(context)
        }

        mutating func run() {
            server.logger.info("Modbus TCP server listening", metadata: [
                "address": "\(server.configuration.listen.host):\(server.port)",
                "max-connections": "\(server.configuration.maxConnections)",
                "max-connections-per-address": "\(server.configuration.maxConnectionsPerAddress)",
            ])
            var entries: [pollfd] = []
            while !server.stopping.load(ordering: .acquiring) {
                entries.removeAll(keepingCapacity: true)
                entries.append(pollfd(fd: server.wake.readDescriptor, events: Int16(POLLIN), revents: 0))
                if let until = acceptPausedUntil, until <= .now { acceptPausedUntil = nil }
                // A negative descriptor is skipped by poll(): the listener's place stays, unwatched.
                let listening = acceptPausedUntil == nil ? server.listener.descriptor : -1
                entries.append(pollfd(fd: listening, events: Int16(POLLIN), revents: 0))
                for client in clients { entries.append(pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)) }
                let deadline = [nextIdleDeadline(), nextWriteDeadline(), acceptPausedUntil, logLimiter.nextExpiry]
                    .compactMap { $0 }.min()
                _ = pollDescriptors(&entries, timeout: deadline.map { max(.milliseconds(1), $0 - .now) })
                if server.stopping.load(ordering: .acquiring) { break }
                if entries[0].revents != 0 {
                    server.wake.drain()
                    finishWrites()
                }
                // Clients first, in the order polled; new connections join the next round.
                var index = 0
                for entry in entries[2...] {
                    let fd = entry.fd
                    guard index < clients.count, clients[index].fd == fd else { continue }
                    if entry.revents != 0 && !service(index) {
                        closeClient(at: index)
                        continue
                    }
                    index += 1
                }
                if entries[1].revents != 0 { acceptAll() }
                expireWrites()
                closeIdle()
                logSummaries()
            }
            // Outcomes posted while the program stopped (a device service answering the writes it
            // will not carry out) still reach their clients before the connections close.
            finishWrites()
            for client in clients {
                client.requester?.leave()
                close(client.fd)
            }
            server.stats.withLock { $0.open = 0 }
            clients.removeAll()
            server.logger.info("Modbus TCP server stopped")
        }

        /// Reads what a client sent and answers every complete request; `false` closes it.
        mutating func service(_ index: Int) -> Bool {
            let fd = clients[index].fd
            let received = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if received == 0 { return false }
            if received < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
            clients[index].buffer.append(contentsOf: scratch[0..<received])
            if clients[index].pendingWrite != nil {
                // A client may queue a few requests behind a write, not flood us meanwhile.
                return clients[index].buffer.count <= 4 * Int(sec1000_modbus_tcp_max_adu_length)
            }
            return answerBuffered(index)
        }

        /// Answers every complete request in a client's buffer, stopping at a deferred write.
        mutating func answerBuffered(_ index: Int) -> Bool {
            var consumed = 0
            let outcome = clients[index].buffer.withUnsafeBytes { bytes -> Bool in
                while bytes.count - consumed >= MBAPHeader.size && clients[index].pendingWrite == nil {
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
                    guard let size = MBAPHeader.frameSize(rest) else {
                        if logLimiter.record(ServerEvent(kind: .garbage, host: clients[index].peer.host), now: .now) == .log {
                            server.logger.info("closing a client that sent a non-Modbus frame", metadata: [
                                "client": "\(clients[index].peer)",
                                "bytes": "\(rest.prefix(12).hexDescription)",
                            ])
                        }
                        server.stats.withLock { $0.garbageClosed += 1 }
                        return false
                    }
                    guard rest.count >= size else { break }
                    clients[index].requests += 1
                    guard answer(UnsafeRawBufferPointer(rebasing: rest[0..<size]), to: index) else { return false }
                    consumed += size
                }
                return true
            }
            guard outcome else { return false }
            if consumed > 0 {
                clients[index].buffer.removeFirst(consumed)
                clients[index].lastRequest = .now
            }
            return true
        }

        /// Sends the answers of writes the bank has finished, then serves what those clients queued.
        mutating func finishWrites() {
            for (token, outcome) in server.completions.drain() {
                guard let index = clients.firstIndex(where: { $0.id == token }),
                      let frame = clients[index].pendingWrite else { continue }
                clients[index].pendingWrite = nil
                clients[index].requester = nil
                modbus_set_socket(context, clients[index].fd)
                let sent = frame.withUnsafeBufferPointer { request in
                    switch outcome {
                    case .success:
                        // The tables are scratch space: the write lands there and libmodbus echoes it.
                        modbus_reply(context, request.baseAddress, Int32(request.count), mapping) >= 0
                    case .exception(let exception):
                        replyException(exception, to: request.baseAddress!)
                    }
                }
                if !sent || !answerBuffered(index) { closeClient(at: index) }
            }
        }

        /// Answers one complete frame; `false` if the client cannot take the answer.
        mutating func answer(_ frame: UnsafeRawBufferPointer, to index: Int) -> Bool {
            let decision = registers.withUnsafeMutableBufferPointer { buffer in
                decide(
                    frame: frame, bank: server.bank, client: clients[index].peer, registers: buffer,
                    identification: server.configuration.identification)
            }
            let function = frame.count > 7 ? frame[7] : 0
            server.stats.withLock {
                $0.requests += 1
                $0.requestsByFunction[function, default: 0] += 1
            }
            let request = frame.baseAddress!.assumingMemoryBound(to: UInt8.self)
            modbus_set_socket(context, clients[index].fd)
            switch decision {
            case .read(let function, let address, let count):
                let table = function == FunctionCode.readHoldingRegisters
                    ? mapping.pointee.tab_registers! : mapping.pointee.tab_input_registers!
                registers.withUnsafeBufferPointer { values in
                    (table + Int(address)).update(from: values.baseAddress!, count: Int(count))
                }
                return modbus_reply(context, request, Int32(frame.count), mapping) >= 0
            case .reply(let pdu):
                // libmodbus has no reply for this function: echo the transaction and unit id ourselves.
                let length = pdu.count + 1
                let header = [frame[0], frame[1], 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), frame[6]]
                return sendAll(clients[index].fd, header + pdu)
            case .exception(let exception):
                return replyException(exception, to: request)
            case .write(let write):
                let completion = WriteCompletion(token: clients[index].id, queue: server.completions)
                if let refusal = server.bank.write(write, completion: completion) {
                    return replyException(refusal, to: request)
                }
                clients[index].pendingWrite = Array(frame)
                clients[index].pendingSince = .now
                clients[index].requester = completion.requester
                return true
            }
        }

        /// Answers `request` with `exception` on the current client's socket.
        func replyException(_ exception: ModbusException, to request: UnsafePointer<UInt8>) -> Bool {
            server.stats.withLock {
                $0.exceptions += 1
                $0.exceptionsByCode[exception.rawValue, default: 0] += 1
            }
            return modbus_reply_exception(context, request, UInt32(exception.rawValue)) >= 0
        }

        /// Writes every byte to a client's socket; like `modbus_reply`, a client whose socket is full
        /// (one that does not read its answers) fails and is closed.
        func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
            var sent = 0
            while sent < bytes.count {
                let count = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return false }
                sent += count
            }
            return true
        }

        mutating func acceptAll() {
            while true {
                let fd: Int32?
                do {
                    fd = try server.listener.acceptDescriptor()
                } catch {
                    // EMFILE, ENFILE and the like do not clear by retrying at once: the pending
                    // connection stays in the backlog and poll() reports it again. Wait instead.
                    pauseAccepting(because: "accept failed: \(error)")
                    return
                }
                guard let fd else { return }
                // Descriptors are allocated lowest first: all below `fd` are taken, so at most
                // `descriptorLimit - fd - 1` are free. Those are the program's reserve.
                if descriptorLimit - Int(fd) - 1 < server.configuration.reservedDescriptors {
                    close(fd)
                    server.stats.withLock { $0.refused += 1 }
                    pauseAccepting(because: "descriptors are running out; the rest are kept for the devices")
                    return
                }
                acceptPause = Self.firstAcceptPause
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                let peer = peerAddress(of: fd)
                guard admit(peer) else {
                    close(fd)
                    server.stats.withLock { $0.refused += 1 }
                    continue
                }
                clients.append(Client(id: nextClientID, fd: fd, peer: peer, lastRequest: .now))
                nextClientID += 1
                server.stats.withLock {
                    $0.accepted += 1
                    $0.open = clients.count
                }
                server.logger.debug("client connected", metadata: ["client": "\(peer)"])
            }
        }

        /// Whether a newcomer from `peer` may stay; makes room for it at the limit if a connection
        /// that never sent a request can go. Those that have sent requests (the masters) and those
        /// waiting for a write are never closed for a newcomer.
        mutating func admit(_ peer: SocketAddress) -> Bool {
            let configuration = server.configuration
            let sameAddress = clients.lazy.filter { $0.peer.host == peer.host }.count
            if sameAddress >= configuration.maxConnectionsPerAddress {
                if logLimiter.record(ServerEvent(kind: .refusedPerAddress, host: peer.host), now: .now) == .log {
                    server.logger.notice("connection limit per address reached: refusing a new client", metadata: [
                        "client": "\(peer)", "limit": "\(configuration.maxConnectionsPerAddress)",
                    ])
                }
                return false
            }
            guard clients.count >= configuration.maxConnections else { return true }
            // The newest of those that never sent a request: older ones keep their places, so a
            // flood churns only its own latest connection.
            guard let victim = clients.indices.last(where: { clients[$0].requests == 0 && clients[$0].pendingWrite == nil }) else {
                if logLimiter.record(ServerEvent(kind: .refused, host: peer.host), now: .now) == .log {
                    server.logger.notice("connection limit reached: refusing a new client (every connection is in use)", metadata: [
                        "client": "\(peer)", "limit": "\(configuration.maxConnections)",
                    ])
                }
                return false
            }
            if logLimiter.record(ServerEvent(kind: .evicted, host: clients[victim].peer.host), now: .now) == .log {
                server.logger.notice("connection limit reached: closing a client that has sent no request", metadata: [
                    "closed": "\(clients[victim].peer)", "new": "\(peer)", "limit": "\(configuration.maxConnections)",
                ])
            }
            server.stats.withLock { $0.evicted += 1 }
            closeClient(at: victim)
            return true
        }

        /// Leaves the listener out of `poll()` for a while, longer each time in a row (up to 1 s).
        mutating func pauseAccepting(because reason: String) {
            server.stats.withLock { $0.acceptPauses += 1 }
            if logLimiter.record(ServerEvent(kind: .acceptPaused, host: ""), now: .now) == .log {
                server.logger.warning("not accepting connections for a moment", metadata: [
                    "reason": "\(reason)", "pause": "\(acceptPause)",
                    "open": "\(clients.count)",
                ])
            }
            acceptPausedUntil = .now + acceptPause
            acceptPause = min(acceptPause * 2, Self.longestAcceptPause)
        }

        /// Writes one line for each kind of event that was not logged in full during its window.
        mutating func logSummaries() {
            guard let due = logLimiter.nextExpiry, due <= .now else { return }
            for summary in logLimiter.expire(now: .now) {
                let seconds = summary.window.components.seconds
                let from = summary.key.map { $0.host.isEmpty ? "" : " from \($0.host)" } ?? " from other addresses"
                let what = summary.key?.kind.summary ?? "repeated events (connections, refusals, pauses)"
                server.logger.notice("\(summary.count) more \(what)\(from) in the last \(seconds) s")
            }
        }

        func nextIdleDeadline() -> ContinuousClock.Instant? {
            clients.lazy.filter { $0.pendingWrite == nil }.map(\.lastRequest).min().map { $0 + server.configuration.idleTimeout }
        }

        func nextWriteDeadline() -> ContinuousClock.Instant? {
            guard let timeout = server.configuration.writeTimeout else { return nil }
            return clients.lazy.filter { $0.pendingWrite != nil }.map(\.pendingSince).min().map { $0 + timeout }
        }

        /// Answers 0x0B to every write the bank has not finished within `writeTimeout`; a late
        /// outcome finds no pending write and is dropped.
        mutating func expireWrites() {
            guard let timeout = server.configuration.writeTimeout else { return }
            let limit = ContinuousClock.now - timeout
            var index = 0
            while index < clients.count {
                if let frame = clients[index].pendingWrite, clients[index].pendingSince <= limit {
                    clients[index].requester?.leave()
                    clients[index].requester = nil
                    clients[index].pendingWrite = nil
                    modbus_set_socket(context, clients[index].fd)
                    let sent = frame.withUnsafeBufferPointer { replyException(.gatewayTargetFailedToRespond, to: $0.baseAddress!) }
                    if !sent || !answerBuffered(index) {
                        closeClient(at: index)
                        continue
                    }
                }
                index += 1
            }
        }

        mutating func closeIdle() {
            let limit = ContinuousClock.now - server.configuration.idleTimeout
            var index = 0
            while index < clients.count {
                // A client waiting for its write's answer is not idle.
                if clients[index].lastRequest <= limit && clients[index].pendingWrite == nil {
                    server.logger.debug("closing an idle client", metadata: ["client": "\(clients[index].peer)"])
                    server.stats.withLock { $0.idleClosed += 1 }
                    closeClient(at: index)
                } else {
                    index += 1
                }
            }
        }

        mutating func closeClient(at index: Int) {
            // A write the bank has not started is dropped: nobody would get its answer.
            clients[index].requester?.leave()
            close(clients[index].fd)
            server.logger.debug("client disconnected", metadata: ["client": "\(clients[index].peer)"])
            clients.remove(at: index)
            server.stats.withLock { $0.open = clients.count }
        }
    }
}

/// A kind of server event whose log lines are rate-limited, and who caused it.
struct ServerEvent: Hashable, Sendable {
    enum Kind: Hashable, Sendable {
        case garbage, evicted, refused, refusedPerAddress, acceptPaused

        var summary: String {
            switch self {
            case .garbage: "clients closed for non-Modbus frames"
            case .evicted: "clients closed for newcomers at the connection limit"
            case .refused: "newcomers refused at the connection limit"
            case .refusedPerAddress: "newcomers refused at the per-address connection limit"
            case .acceptPaused: "pauses of accepting"
            }
        }
    }

    let kind: Kind
    let host: String
}
