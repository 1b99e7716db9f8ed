#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A host and a TCP port, as the user wrote them (`192.168.1.20:1234`, `[::1]:502`, `sec1000.lan`).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST[:PORT]`; an IPv6 host with a port is written in brackets.
    public init(parsing text: String, defaultPort: UInt16?) throws(AddressError) {
        var host = Substring(text)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw .invalid(text, "missing ] after the IPv6 address") }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw .invalid(text, "expected :PORT after ]") }
                portText = rest.dropFirst()
            }
        } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw .invalid(text, "the host is empty") }
        if let portText {
            guard let port = UInt16(portText) else { throw .invalid(text, "'\(portText)' is not a port (0-65535)") }
            self.init(host: String(host), port: port)
        } else if let defaultPort {
            self.init(host: String(host), port: defaultPort)
        } else {
            throw .invalid(text, "a port is required (HOST:PORT)")
        }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Resolves the address for a TCP socket; the results are tried in order. `numericOnly`
    /// refuses host names, so that the call never blocks on a name server.
    func resolve(passive: Bool = false, numericOnly: Bool = false) throws(SocketError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = socketStreamType
        hints.ai_flags = (passive ? AI_PASSIVE : 0) | (numericOnly ? AI_NUMERICHOST : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            throw .resolution(host: host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var resolved: [ResolvedAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let entry = node {
            if let address = entry.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(entry.pointee.ai_addrlen)))
                }
                resolved.append(ResolvedAddress(family: entry.pointee.ai_family, storage: storage, length: entry.pointee.ai_addrlen))
            }
            node = entry.pointee.ai_next
        }
        return resolved
    }
}

/// An address that could not be understood.
public enum AddressError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String, String)

    public var description: String {
        switch self {
        case .invalid(let text, let reason): "invalid address '\(text)': \(reason)"
        }
    }
}

struct ResolvedAddress {
    var family: Int32
    var storage: sockaddr_storage
    var length: socklen_t

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

#if canImport(Glibc)
let socketStreamType = Int32(SOCK_STREAM.rawValue)
#else
let socketStreamType = SOCK_STREAM
#endif

/// The numeric host of a connected or bound socket's peer or local address.
func numericHost(_ storage: sockaddr_storage, length: socklen_t) -> (host: String, port: UInt16) {
    var hostBuffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    var serviceBuffer = [CChar](repeating: 0, count: Int(NI_MAXSERV))
    let status = withUnsafeBytes(of: storage) { raw in
        getnameinfo(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length,
                    &hostBuffer, socklen_t(hostBuffer.count), &serviceBuffer, socklen_t(serviceBuffer.count),
                    NI_NUMERICHOST | NI_NUMERICSERV)
    }
    guard status == 0 else { return ("?", 0) }
    let host = hostBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    let port = serviceBuffer.withUnsafeBufferPointer { UInt16(String(cString: $0.baseAddress!)) ?? 0 }
    // Show IPv4-mapped IPv6 peers as plain IPv4.
    return (host.hasPrefix("::ffff:") && host.contains(".") ? String(host.dropFirst(7)) : host, port)
}
