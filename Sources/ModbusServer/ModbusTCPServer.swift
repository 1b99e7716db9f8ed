#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CModbus
import Logging
import Sockets
import Locking
import Synchronization

/// How the server treats its clients.
public struct ServerConfiguration: Sendable {
    public var listen: SocketAddress
    /// Open client connections at most; at the limit, the longest-idle one is closed for a newcomer.
    public var maxConnections: Int
    /// A connection with no complete request for this long is closed.
    public var idleTimeout: Duration
    /// What function 43 / MEI type 14 answers; `nil` refuses the function (0x01).
    public var identification: DeviceIdentification?

    public init(
        listen: SocketAddress, maxConnections: Int = 64, idleTimeout: Duration = .seconds(60),
        identification: DeviceIdentification? = nil
    ) {
        self.listen = listen
        self.maxConnections = max(1, maxConnections)
        self.idleTimeout = idleTimeout
        self.identification = identification
    }
}

/// Counters of what the server has done, for logs, tests and benchmarks.
public struct ServerStatistics: Sendable, Equatable {
    public var accepted = 0
    public var evicted = 0
    public var idleClosed = 0
    public var garbageClosed = 0
    public var requests = 0
    public var exceptions = 0
    public var open = 0
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
            /// A write the bank is carrying out; this client's later requests wait for its answer.
            var pendingWrite: [UInt8]?
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

        init(server: ModbusTCPServer) {
            self.server = server
            // The context only formats replies; each client's socket is set before use.
            context = modbus_new_tcp("0.0.0.0", 0)!
            // Both tables span the whole address space, so the bank's values can go where the request points.
            mapping = modbus_mapping_new(0, 0, 65536, 65536)!
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
            ])
            var entries: [pollfd] = []
            while !server.stopping.load(ordering: .acquiring) {
                entries.removeAll(keepingCapacity: true)
                entries.append(pollfd(fd: server.wake.readDescriptor, events: Int16(POLLIN), revents: 0))
                entries.append(pollfd(fd: server.listener.descriptor, events: Int16(POLLIN), revents: 0))
                for client in clients { entries.append(pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)) }
                _ = pollDescriptors(&entries, timeout: nextIdleDeadline().map { max(.milliseconds(1), $0 - .now) })
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
                closeIdle()
            }
            for client in clients { close(client.fd) }
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
                        server.logger.info("closing a client that sent a non-Modbus frame", metadata: [
                            "client": "\(clients[index].peer)",
                            "bytes": "\(Array(rest.prefix(12)).map { String($0, radix: 16) }.joined(separator: " "))",
                        ])
                        server.stats.withLock { $0.garbageClosed += 1 }
                        return false
                    }
                    guard rest.count >= size else { break }
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
            server.stats.withLock { $0.requests += 1 }
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
                return true
            }
        }

        /// Answers `request` with `exception` on the current client's socket.
        func replyException(_ exception: ModbusException, to request: UnsafePointer<UInt8>) -> Bool {
            server.stats.withLock { $0.exceptions += 1 }
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
                    server.logger.warning("accept failed", metadata: ["error": "\(error)"])
                    return
                }
                guard let fd else { return }
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                let peer = peerAddress(of: fd)
                if clients.count >= server.configuration.maxConnections,
                   let oldest = clients.indices.min(by: { clients[$0].lastRequest < clients[$1].lastRequest }) {
                    server.logger.notice("connection limit reached: closing the longest-idle client", metadata: [
                        "closed": "\(clients[oldest].peer)", "new": "\(peer)",
                        "limit": "\(server.configuration.maxConnections)",
                    ])
                    server.stats.withLock { $0.evicted += 1 }
                    closeClient(at: oldest)
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

        func nextIdleDeadline() -> ContinuousClock.Instant? {
            clients.lazy.filter { $0.pendingWrite == nil }.map(\.lastRequest).min().map { $0 + server.configuration.idleTimeout }
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
            close(clients[index].fd)
            server.logger.debug("client disconnected", metadata: ["client": "\(clients[index].peer)"])
            clients.remove(at: index)
            server.stats.withLock { $0.open = clients.count }
        }
    }
}
