import SEC1000Protocol
import Sockets

/// Timeouts of one transaction.
public struct Timeouts: Sendable, Equatable {
    /// How long connecting may take.
    public var connect: Duration
    /// How long sending the request and receiving the whole answer may take.
    public var answer: Duration

    public init(connect: Duration = .seconds(10), answer: Duration = .seconds(10)) {
        self.connect = connect
        self.answer = answer
    }
}

/// One transaction as the device expects it: connect, send one request, read one whole answer, close.
///
/// Bounded by `timeouts`. Reads exactly the frame the length byte announces, however TCP splits
/// it, and never a byte more. Every wait suspends on `loop`, so a thousand devices polled at once
/// hold no thread each, and task cancellation ends the transaction at once with `.cancelled`.
public func performTransaction(
    _ request: Request, with address: SocketAddress, timeouts: Timeouts, loop: PollLoop
) async throws(SEC1000Error) -> Response {
    let stream: AsyncTCPStream
    do {
        stream = try await AsyncTCPStream.connect(to: address, deadline: .now + timeouts.connect, loop: loop)
    } catch {
        throw SEC1000Error(error, stage: .connect, received: [])
    }
    let deadline = ContinuousClock.now + timeouts.answer
    do {
        try await stream.write(request.bytes, deadline: deadline)
    } catch {
        throw SEC1000Error(error, stage: .send, received: [])
    }
    var reader = ResponseFrameReader()
    while reader.missing > 0 {
        let chunk: [UInt8]
        do throws(SocketError) {
            chunk = try await stream.read(upTo: reader.missing, deadline: deadline)
        } catch {
            throw SEC1000Error(error, stage: .receive, received: reader.bytes)
        }
        do throws(ProtocolError) { try reader.append(chunk) } catch { throw SEC1000Error(error) }
    }
    do throws(ProtocolError) {
        return try ResponseDecoder.decode(reader.bytes, for: request.command)
    } catch {
        throw SEC1000Error(error)
    }
}

/// Sends `request` and returns whatever the device answered, valid or not, for `sec1000 analyze`.
///
/// Reads until the length byte's frame is complete, the bytes stop making sense, the device
/// closes, or the timeout; a failure before anything arrives is thrown.
public func captureRawAnswer(
    to request: Request, from address: SocketAddress, timeouts: Timeouts
) throws(SEC1000Error) -> [UInt8] {
    try withRequestSent(request, to: address, timeouts: timeouts) { stream, deadline throws(SEC1000Error) in
        var reader = ResponseFrameReader()
        var bytes: [UInt8] = []
        while reader.missing > 0 {
            let chunk: [UInt8]
            do throws(SocketError) {
                chunk = try stream.read(upTo: reader.missing, deadline: deadline)
            } catch {
                // Whatever arrived is the answer to show; with nothing, the cause is the answer.
                if bytes.isEmpty { throw SEC1000Error(error, stage: .receive, received: []) }
                break
            }
            bytes += chunk
            do { try reader.append(chunk) } catch { break }
        }
        return bytes
    }
}

/// Connects, sends `request`, and hands the connection and the answer's deadline to `body`.
private func withRequestSent<R>(
    _ request: Request, to address: SocketAddress, timeouts: Timeouts,
    _ body: (borrowing TCPStream, ContinuousClock.Instant) throws(SEC1000Error) -> R
) throws(SEC1000Error) -> R {
    let stream: TCPStream
    do {
        stream = try TCPStream.connect(to: address, timeout: timeouts.connect)
    } catch {
        throw SEC1000Error(error, stage: .connect, received: [])
    }
    let deadline = ContinuousClock.now + timeouts.answer
    do {
        try stream.write(request.bytes, deadline: deadline)
    } catch {
        throw SEC1000Error(error, stage: .send, received: [])
    }
    return try body(stream, deadline)
}
