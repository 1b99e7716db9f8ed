#if os(Linux)
import CMallocCalls
#endif
import CMosquitto
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The network thread: the only code that calls libmosquitto once the connection has started.
extension MQTTConnection {
    /// What the thread knows and nobody else touches.
    private struct Loop {
        /// A socket exists: a connection attempt or an accepted connection.
        var open = false
        var connected = false
        var failures = 0
        var nextAttempt = ContinuousClock.now
        /// Filters the broker has from this connection, with their QoS.
        var brokerFilters: [String: MQTTQoS] = [:]
        /// Subscribers whose filter has been sent on this connection.
        var subscribed: Set<Int> = []
        var lastReason: MQTTDisconnectReason?
    }

    func runNetworkThread() {
        // libmosquitto writes with send(…, 0), which raises SIGPIPE on a connection the broker
        // closed. A signal a write raises goes to the writing thread: blocked here, the write
        // fails with EPIPE instead of ending the program.
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)

        let context = LoopContext(connection: self)
        let mosq = handle.pointer
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(context).toOpaque())

        var loop = Loop()
        var final: MQTTMessage?
        while true {
            if case .stopping(let message) = shared.withLock({ $0.phase }) {
                final = message
                break
            }
            if !loop.open && ContinuousClock.now >= loop.nextAttempt {
                attemptConnection(&loop, context)
            }
            waitForWork(loop)
            wake.drain()
            if shared.withLock({ state in defer { state.cutSocket = false }; return state.cutSocket }) {
                let socket = mosquitto_socket(mosq)
                if socket >= 0 { _ = Glibc.shutdown(socket, Int32(SHUT_RDWR)) }
            }
            if loop.open {
                _ = mosquitto_loop(mosq, 0, 1)
                context.settle()
                afterLoop(&loop, context)
            }
            if loop.connected {
                syncSubscriptions(&loop)
                sendPending(context)
            }
            reportUnconfirmed(context)
            if context.trimWhenSent { trimAfterBacklog(context) }
        }
        if loop.connected {
            disconnectCleanly(final: final, context)
        }
        // Closes a socket still open (an attempt under way, a goodbye that did not finish) now,
        // not whenever the connection object goes.
        mosquitto_destroy(mosq)
        shared.withLock { $0.handleDestroyed = true }
        finish()
    }

    /// Waits until the socket or the wake pipe has something, or a timer is due (at most 1 s,
    /// so that libmosquitto's keepalive runs).
    private func waitForWork(_ loop: Loop) {
        var fds = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
        let socket = mosquitto_socket(handle.pointer)
        var timeout: Int32 = 1000
        if loop.open && socket >= 0 {
            let events = Int16(POLLIN) | (mosquitto_want_write(handle.pointer) ? Int16(POLLOUT) : 0)
            fds.append(pollfd(fd: socket, events: events, revents: 0))
        } else if !loop.open {
            let remaining = ContinuousClock.now.duration(to: loop.nextAttempt)
            timeout = Int32(clamping: max(0, min(1000, remaining.milliseconds)))
        }
        _ = poll(&fds, nfds_t(fds.count), timeout)
    }

    private func attemptConnection(_ loop: inout Loop, _ context: LoopContext) {
        setState(.connecting)
        context.connack = nil
        context.disconnect = nil
        context.lastError = nil
        let broker = configuration.broker
        // Non-blocking: only the name lookup may wait, and it waits on this thread.
        let status = mosquitto_connect_async(handle.pointer, broker.host, Int32(broker.port), Int32(configuration.keepalive))
        if status == success {
            loop.open = true
        } else {
            attemptFailed(&loop, .unreachable(describe(status, errno: errno, context)))
        }
    }

    /// Reads what the callbacks reported during `mosquitto_loop`.
    private func afterLoop(_ loop: inout Loop, _ context: LoopContext) {
        var refusal: MQTTRefusal?
        if let code = context.connack {
            context.connack = nil
            if code == 0 {
                connectionAccepted(&loop, context)
            } else {
                refusal = MQTTRefusal(code: code)
            }
        }
        guard mosquitto_socket(handle.pointer) < 0 else { return }
        // The socket is gone: libmosquitto closed it after an error, a refusal or a missed keepalive.
        loop.open = false
        let (code, savedErrno) = context.disconnect ?? (Int32(MOSQ_ERR_CONN_LOST.rawValue), 0)
        context.disconnect = nil
        if loop.connected {
            loop.connected = false
            context.forgetUnwritten()
            connectionLost(&loop, .lost(describe(code, errno: savedErrno, context)))
        } else if let refusal {
            attemptFailed(&loop, .refused(refusal))
        } else {
            attemptFailed(&loop, .unreachable(describe(code, errno: savedErrno, context)))
        }
    }

    private func connectionAccepted(_ loop: inout Loop, _ context: LoopContext) {
        loop.connected = true
        loop.failures = 0
        loop.brokerFilters = [:]
        loop.subscribed = []
        loop.lastReason = nil
        logger.info("MQTT connected")
        syncSubscriptions(&loop)
        // Still `connected == false` for callers: what the hook publishes goes to the outbox,
        // replacing older messages for the same topics, and leaves with it below.
        onConnect?(self)
        let observers = shared.withLock { shared -> [AsyncStream<MQTTConnectionState>.Continuation] in
            shared.connected = true
            shared.state = .connected
            shared.statistics.connects += 1
            return Array(shared.observers.values)
        }
        for observer in observers { observer.yield(.connected) }
        context.trimWhenSent = shared.withLock { $0.outbox.count + $0.queue.count } >= Self.trimAfterBacklog
        sendPending(context)
    }

    private func connectionLost(_ loop: inout Loop, _ reason: MQTTDisconnectReason) {
        logger.warning("MQTT connection lost; reconnecting", metadata: ["reason": "\(reason)"])
        shared.withLock { $0.statistics.connectionLosses += 1 }
        loop.lastReason = reason
        loop.nextAttempt = ContinuousClock.now + configuration.reconnect.delay(afterFailures: 0)
        setState(.disconnected(reason))
    }

    private func attemptFailed(_ loop: inout Loop, _ reason: MQTTDisconnectReason) {
        let delay = configuration.reconnect.delay(afterFailures: loop.failures)
        loop.failures += 1
        loop.nextAttempt = ContinuousClock.now + delay
        // Once per distinct reason: a broker down for a day must not fill the log.
        if reason != loop.lastReason {
            let level: Logger.Level = if case .refused = reason { .error } else { .warning }
            logger.log(level: level, "MQTT connection failed; retrying with back-off", metadata: [
                "reason": "\(reason)", "retry_in": "\(delay)",
            ])
        }
        loop.lastReason = reason
        shared.withLock { $0.statistics.failedAttempts += 1 }
        setState(.disconnected(reason))
    }

    /// Records `state` and tells the observers; moves queued messages to the outbox when the
    /// connection is gone.
    private func setState(_ state: MQTTConnectionState) {
        let observers = shared.withLock { shared -> [AsyncStream<MQTTConnectionState>.Continuation] in
            if state != .connected && shared.connected {
                shared.connected = false
                for message in shared.queue where shared.outbox.put(message) { shared.statistics.replacedInOutbox += 1 }
                shared.queue.removeAll()
                shared.statistics.outboxTopics = shared.outbox.count
            }
            guard shared.state != state else { return [] }
            shared.state = state
            return Array(shared.observers.values)
        }
        for observer in observers { observer.yield(state) }
    }

    /// Sends what the subscribers want and the broker lacks; drops what nobody wants any more.
    private func syncSubscriptions(_ loop: inout Loop) {
        let subscribers = shared.withLock { $0.subscribers.mapValues { ($0.filter, $0.qos) } }
        var wanted: [String: MQTTQoS] = [:]
        for (filter, qos) in subscribers.values { wanted[filter] = max(wanted[filter] ?? qos, qos) }
        // A new subscriber subscribes again, even to a filter the broker has: that is how it gets
        // the retained messages.
        var toSend = Set(subscribers.filter { !loop.subscribed.contains($0.key) }.map(\.value.0))
        for (filter, qos) in wanted where loop.brokerFilters[filter] != qos { toSend.insert(filter) }
        for filter in toSend {
            guard let qos = wanted[filter] else { continue }
            let status = mosquitto_subscribe(handle.pointer, nil, filter, qos.rawValue)
            if status == success {
                loop.brokerFilters[filter] = qos
            } else {
                logger.warning("MQTT subscribe failed", metadata: ["filter": "\(filter)", "error": "\(String(cString: mosquitto_strerror(status)))"])
            }
        }
        loop.subscribed = Set(subscribers.keys)
        for filter in loop.brokerFilters.keys where wanted[filter] == nil {
            _ = mosquitto_unsubscribe(handle.pointer, nil, filter)
            loop.brokerFilters[filter] = nil
        }
    }

    /// Hands the outbox, then the queue, to libmosquitto, as far as the hand-over limits allow:
    /// libmosquitto copies each message and keeps it until it is written (QoS 0) or acknowledged
    /// (QoS 1, 2), and with at most 20 QoS 1 messages in flight a whole backlog (discovery for many
    /// devices at every connection) would sit there at once. The rest follows as the broker
    /// acknowledges; callers' messages wait in the queue and outbox meanwhile, never blocking them.
    private func sendPending(_ context: LoopContext) {
        let room = Self.handOverLimit - context.unconfirmed.count
        let byteRoom = Self.handOverByteLimit - context.unconfirmedBytes
        guard room > 0 && byteRoom > 0 else { return }
        let messages = shared.withLock { shared -> [MQTTMessage] in
            guard shared.connected, !(shared.outbox.isEmpty && shared.queue.isEmpty) else { return [] }
            var messages: [MQTTMessage] = []
            var bytes = 0
            // The outbox is older than the queue: it goes first, which keeps the order per topic.
            while messages.count < room && bytes < byteRoom, let message = shared.outbox.popFirst() {
                messages.append(message)
                bytes += message.handOverBytes
            }
            var fromQueue = 0
            while messages.count < room && bytes < byteRoom && fromQueue < shared.queue.count {
                messages.append(shared.queue[fromQueue])
                bytes += shared.queue[fromQueue].handOverBytes
                fromQueue += 1
            }
            shared.queue.removeFirst(fromQueue)
            if shared.queue.isEmpty { shared.queue = [] }
            shared.statistics.outboxTopics = shared.outbox.count
            return messages
        }
        guard !messages.isEmpty else { return }
        var sent = 0
        var highWater = 0
        var failed: [MQTTMessage] = []
        for message in messages {
            var mid: Int32 = 0
            let status = message.payload.withUnsafeBytes {
                mosquitto_publish(handle.pointer, &mid, message.topic, Int32($0.count), $0.baseAddress, message.qos.rawValue, message.retain)
            }
            if status == success {
                sent += 1
                context.handedOver(mid: mid, qos: message.qos, bytes: message.handOverBytes)
                highWater = max(highWater, context.unconfirmed.count)
                // A QoS 0 message may have been written, and confirmed, inside `mosquitto_publish`.
                context.settle()
            } else if status == Int32(MOSQ_ERR_NO_CONN.rawValue) || status == Int32(MOSQ_ERR_CONN_LOST.rawValue)
                || status == Int32(MOSQ_ERR_ERRNO.rawValue) || status == Int32(MOSQ_ERR_NOMEM.rawValue) {
                // The connection is failing: keep it for the next one (the loop notices the failure).
                failed.append(message)
            } else {
                logger.error("MQTT publish refused by libmosquitto; message dropped", metadata: [
                    "topic": "\(message.topic)", "error": "\(String(cString: mosquitto_strerror(status)))",
                ])
            }
        }
        shared.withLock { shared in
            shared.statistics.published += sent
            shared.statistics.unconfirmedHighWater = max(shared.statistics.unconfirmedHighWater, highWater)
            guard !failed.isEmpty else { return }
            // Back to the outbox, older than anything published meanwhile, which wins per topic.
            var outbox = Outbox()
            for message in failed + shared.outbox.takeAll() + shared.queue where outbox.put(message) {
                shared.statistics.replacedInOutbox += 1
            }
            shared.outbox = outbox
            shared.queue.removeAll()
            shared.statistics.outboxTopics = outbox.count
        }
    }

    /// Once the backlog a connection began with is sent and confirmed, gives the heap it freed back
    /// to the system (see `trimAfterBacklog`).
    private func trimAfterBacklog(_ context: LoopContext) {
        guard context.unconfirmed.isEmpty, shared.withLock({ $0.outbox.isEmpty && $0.queue.isEmpty }) else { return }
        context.trimWhenSent = false
        #if os(Linux)
        _ = malloc_trim(0)
        #endif
        shared.withLock { $0.statistics.trims += 1 }
    }

    /// For the statistics, when it changed.
    private func reportUnconfirmed(_ context: LoopContext) {
        let unconfirmed = context.unconfirmed.count
        guard unconfirmed != context.reportedUnconfirmed else { return }
        context.reportedUnconfirmed = unconfirmed
        shared.withLock { $0.statistics.unconfirmed = unconfirmed }
    }

    /// Sends what is pending and the final message, then DISCONNECT, which tells the broker not to
    /// publish the will. Gives the pending messages at most 2.5 s to be handed over and confirmed
    /// (libmosquitto drops at DISCONNECT what it has not written), the goodbye what remains of 3 s.
    private func disconnectCleanly(final: MQTTMessage?, _ context: LoopContext) {
        if let final {
            shared.withLock { shared in
                shared.queue.append(final)
            }
        }
        let mosq = handle.pointer
        let start = ContinuousClock.now
        func waitOnSocket() {
            var fds = [pollfd(
                fd: mosquitto_socket(mosq),
                events: Int16(POLLIN) | (mosquitto_want_write(mosq) ? Int16(POLLOUT) : 0), revents: 0)]
            _ = poll(&fds, 1, 100)
            _ = mosquitto_loop(mosq, 0, 1)
            context.settle()
        }
        sendPending(context)
        while mosquitto_socket(mosq) >= 0 && ContinuousClock.now < start + .milliseconds(2500) {
            let pending = shared.withLock { !$0.outbox.isEmpty || !$0.queue.isEmpty }
            guard pending || !context.unconfirmed.isEmpty else { break }
            waitOnSocket()
            sendPending(context)
        }
        guard mosquitto_disconnect(mosq) == success else { return }
        while mosquitto_socket(mosq) >= 0 && ContinuousClock.now < start + .seconds(3) {
            waitOnSocket()
        }
        logger.info("MQTT disconnected cleanly")
    }

    /// Ends every stream and wakes every `shutdown()`.
    private func finish() {
        let (subscribers, observers, waiters) = shared.withLock { shared in
            shared.phase = .stopped
            shared.connected = false
            shared.state = .shutDown
            defer {
                shared.subscribers = [:]
                shared.observers = [:]
                shared.stopWaiters = []
            }
            return (Array(shared.subscribers.values), Array(shared.observers.values), shared.stopWaiters)
        }
        for observer in observers {
            observer.yield(.shutDown)
            observer.finish()
        }
        for subscriber in subscribers { subscriber.continuation.finish() }
        for waiter in waiters { waiter.resume() }
    }

    /// From the message callback, on the network thread: hands the message to every matching
    /// subscriber. Yielding never blocks (full buffers drop their oldest).
    func deliver(_ raw: mosquitto_message) {
        guard let topicPointer = raw.topic else { return }
        let topic = String(cString: topicPointer)
        let payload = raw.payload.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: Int(raw.payloadlen))) } ?? []
        let message = MQTTMessage(topic: topic, payload: payload, qos: MQTTQoS(rawValue: raw.qos) ?? .atMostOnce, retain: raw.retain)
        let targets = shared.withLock { shared in
            shared.statistics.received += 1
            return shared.subscribers.values.filter { MQTTTopic.matches(filter: $0.filter, topic: topic) }.map(\.continuation)
        }
        var dropped = 0
        for target in targets {
            if case .dropped = target.yield(message) { dropped += 1 }
        }
        if dropped > 0 { shared.withLock { $0.statistics.droppedIncoming += dropped } }
    }

    private func describe(_ code: Int32, errno savedErrno: Int32, _ context: LoopContext) -> String {
        var text: String
        if code == Int32(MOSQ_ERR_ERRNO.rawValue) && savedErrno != 0 {
            text = String(cString: strerror(savedErrno))
        } else if code == Int32(MOSQ_ERR_KEEPALIVE.rawValue) {
            text = "no answer from the broker within the keepalive (\(configuration.keepalive) s)"
        } else {
            text = String(cString: mosquitto_strerror(code))
        }
        if let detail = context.lastError { text += " (\(detail))" }
        return text
    }
}

extension Duration {
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
