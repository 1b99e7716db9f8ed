#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network in CIDR notation (`192.168.1.0/24`, `10.0.0.7`, `fd00::/8`), for the
/// control allow-list.
///
/// The syntax is strict, because a lenient reading widens who may write: the prefix length is
/// plain decimal digits without sign or leading zero (`/-0` once read as `/0`, everyone). An
/// IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps, and a client is
/// matched in both forms, so a mapped client matches its IPv4 entry and an IPv6 entry that covers
/// the mapped range (`::/0`) matches IPv4 clients.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefixLength: Int

    public init(parsing text: String) throws(ConfigurationError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = AddressRange.bytes(of: String(parts[0])) else {
            throw .invalid("--control-allow \(text): '\(parts[0])' is not a numeric IPv4 or IPv6 address")
        }
        let maximum = bytes.count * 8
        var prefix = maximum
        if parts.count == 2 {
            guard let value = AddressRange.prefixLength(parts[1]), value <= maximum else {
                throw .invalid("--control-allow \(text): the prefix length must be a number from 0 to \(maximum), as in 10.0.0.0/8")
            }
            prefix = value
        }
        if let mapped = AddressRange.unmapped(bytes), prefix >= 96 {
            (network, prefixLength) = (AddressRange.masked(mapped, prefix - 96), prefix - 96)
        } else {
            (network, prefixLength) = (AddressRange.masked(bytes, prefix), prefix)
        }
    }

    /// `bytes` with every bit beyond the first `prefix` cleared: `10.9.9.9/8` is `10.0.0.0/8`.
    static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = min(8, max(0, prefix - index * 8))
            return bits == 8 ? byte : byte & ~(0xFF >> UInt8(bits))
        }
    }

    /// Whether `host` (a numeric address) lies in this network.
    public func contains(host: String) -> Bool {
        guard let address = AddressRange.bytes(of: host) else { return false }
        let ipv4 = AddressRange.unmapped(address) ?? (address.count == 4 ? address : nil)
        if network.count == 4 {
            return ipv4.map(matches) ?? false
        }
        // An IPv6 network sees an IPv4 client as the IPv4-mapped address it is on a dual-stack socket.
        return matches(ipv4.map(AddressRange.mapped) ?? address)
    }

    private func matches(_ address: [UInt8]) -> Bool {
        guard address.count == network.count else { return false }
        var remaining = prefixLength
        for (a, b) in zip(address, network) where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if a & mask != b { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String {
        let family = network.count == 4 ? AF_INET : AF_INET6
        var text = [CChar](repeating: 0, count: 64)
        _ = network.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, 64) }
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self) + "/\(prefixLength)"
    }

    /// `0`, or 1 to 3 decimal digits without a leading zero; nothing else.
    static func prefixLength(_ text: Substring) -> Int? {
        guard (1...3).contains(text.utf8.count), text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              text == "0" || !text.hasPrefix("0")
        else { return nil }
        return Int(text)
    }

    static func bytes(of host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }

    private static let mappedPrefix: [UInt8] = Array(repeating: 0, count: 10) + [0xFF, 0xFF]

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`); `nil` for any other.
    static func unmapped(_ bytes: [UInt8]) -> [UInt8]? {
        bytes.count == 16 && bytes.prefix(12).elementsEqual(mappedPrefix) ? Array(bytes.suffix(4)) : nil
    }

    static func mapped(_ ipv4: [UInt8]) -> [UInt8] { mappedPrefix + ipv4 }
}
