import Hex
import SEC1000Protocol
import Sockets

/// Why a transaction with the device failed. Every case carries the bytes received, if any.
public enum SEC1000Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which step of a transaction a timeout hit.
    public enum Stage: String, Sendable { case connect, send, receive }

    /// The device did not connect, accept the request or answer in time.
    case timeout(stage: Stage, received: [UInt8])
    /// Nothing listens at the address: wrong host or port, or the device is off.
    case refused
    /// The device reset or closed the connection mid-transaction.
    case reset(received: [UInt8])
    /// The device sent a status frame instead of the data (its known fault; retrying helps).
    case shortAnswer(status: UInt8, received: [UInt8])
    /// The answer's checksum is wrong.
    case checksumMismatch(received: UInt16, computed: UInt16, frame: [UInt8])
    /// The answer belongs to another command.
    case unexpectedCommand(expected: UInt8, received: UInt8, frame: [UInt8])
    /// The answer is not a valid frame; `reason` says how.
    case malformed(reason: String, received: [UInt8])
    /// A valid frame whose values no meter can measure (see `PlausibilityBounds`); never used.
    case implausible(ImplausibleReading, received: [UInt8])
    /// The host name does not resolve.
    case unresolvable(host: String, reason: String)
    /// Any other socket failure.
    case network(String)
    /// The caller was cancelled.
    case cancelled

    init(_ error: ProtocolError) {
        switch error {
        case .badPrefix(let bytes): self = .malformed(reason: "does not start with 04 52 45 56 4F (REVO)", received: bytes)
        case .shortAnswer(_, let status, let bytes): self = .shortAnswer(status: status, received: bytes)
        case .checksumMismatch(let r, let c, let frame): self = .checksumMismatch(received: r, computed: c, frame: frame)
        case .unexpectedCommand(let e, let r, let frame): self = .unexpectedCommand(expected: e, received: r, frame: frame)
        case .malformed(let reason, let bytes): self = .malformed(reason: reason, received: bytes)
        }
    }

    init(_ error: SocketError, stage: Stage, received: [UInt8]) {
        switch error {
        case .timedOut: self = .timeout(stage: stage, received: received)
        case .connectionRefused: self = .refused
        case .connectionReset: self = .reset(received: received)
        case .closedByPeer:
            self = received.isEmpty
                ? .reset(received: received)
                : .malformed(reason: "connection closed after \(received.count) bytes, before the end of the frame", received: received)
        case .resolution(let host, let reason): self = .unresolvable(host: host, reason: reason)
        case .cancelled: self = .cancelled
        case .system: self = .network(error.description)
        }
    }

    /// The bytes received before the failure.
    public var received: [UInt8] {
        switch self {
        case .timeout(_, let bytes), .reset(let bytes), .shortAnswer(_, let bytes), .checksumMismatch(_, _, let bytes),
             .unexpectedCommand(_, _, let bytes), .malformed(_, let bytes), .implausible(_, let bytes):
            bytes
        case .refused, .unresolvable, .network, .cancelled:
            []
        }
    }

    /// Whether another attempt may succeed. Only cancellation is final: the device's faults are
    /// transient (an implausible reading too may be a glitch), and a device that is off may come back.
    public var isRetryable: Bool { self != .cancelled }

    public var description: String {
        let tail = received.isEmpty ? "" : " (received \(received.count) bytes: \(received.hexDescription))"
        switch self {
        case .timeout(let stage, _):
            return "timeout: the device did not \(stage == .connect ? "accept the connection" : stage == .send ? "take the request" : "answer") in time\(tail); check that it is on and reachable"
        case .refused:
            return "connection refused: nothing listens at that address; check the host and port (default 1234)"
        case .reset:
            return "connection reset by the device\(tail); it may be overloaded, poll less often"
        case .shortAnswer(let status, _):
            return "short answer: the device sent a status frame (0x\([status].hexDescription)) instead of the data\(tail)"
        case .checksumMismatch(let received, let computed, let frame):
            return "checksum mismatch: the frame says \(hex(received)), its bytes sum to \(hex(computed)) (received \(frame.count) bytes: \(frame.hexDescription))"
        case .unexpectedCommand(let expected, let received, let frame):
            return "unexpected command: sent 0x\([expected].hexDescription), the answer is for 0x\([received].hexDescription) (received \(frame.count) bytes: \(frame.hexDescription))"
        case .malformed(let reason, _):
            return "malformed answer: \(reason)\(tail)"
        case .implausible(let reading, _):
            return "implausible reading: \(reading)\(tail); the device measures wrongly or its CT settings are wrong (inspect the values with sec1000 analyze --host)"
        case .unresolvable(let host, let reason):
            return "cannot resolve '\(host)': \(reason)"
        case .network(let message):
            return "network error: \(message)"
        case .cancelled:
            return "cancelled"
        }
    }
}

private func hex(_ value: UInt16) -> String {
    "0x" + [UInt8(value >> 8), UInt8(value & 0xFF)].hexDescription.filter { $0 != " " }
}
