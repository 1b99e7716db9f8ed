#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What went wrong on a socket.
public enum SocketError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The deadline passed before the operation completed.
    case timedOut
    /// Nothing listens at the address (ECONNREFUSED).
    case connectionRefused
    /// The peer reset the connection (ECONNRESET, EPIPE).
    case connectionReset
    /// The peer closed the connection before the expected bytes arrived.
    case closedByPeer
    /// The host name could not be resolved.
    case resolution(host: String, reason: String)
    /// The operation was interrupted because its owner was cancelled.
    case cancelled
    /// Any other failure of a system call.
    case system(call: String, errno: Int32)

    static func fromErrno(_ call: String, _ code: Int32 = errno) -> SocketError {
        switch code {
        case ECONNREFUSED: .connectionRefused
        case ECONNRESET, EPIPE: .connectionReset
        case ETIMEDOUT: .timedOut
        default: .system(call: call, errno: code)
        }
    }

    public var description: String {
        switch self {
        case .timedOut: "timed out"
        case .connectionRefused: "connection refused"
        case .connectionReset: "connection reset by peer"
        case .closedByPeer: "connection closed by peer"
        case .resolution(let host, let reason): "cannot resolve '\(host)': \(reason)"
        case .cancelled: "cancelled"
        case .system(let call, let code): "\(call) failed: \(String(cString: strerror(code)))"
        }
    }
}
