#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hides the device's false zero inverter power, with the original tool's semantics.
///
/// It keeps the last `capacity` raw values. A raw 0 is replaced by the newest non-zero value kept,
/// or stays 0 if there is none. The raw 0 is kept too, so after `capacity` zeros in a row no
/// non-zero value is left and a real, lasting 0 (night) gets through. A cache not updated for
/// longer than `maximumAge` is emptied before use.
public struct ZeroPowerFilter: Sendable, Equatable {
    /// The outcome for one raw value.
    public struct Output: Sendable, Equatable {
        /// The value to report.
        public let value: Int32
        /// Whether `value` is a cached value standing in for a raw 0.
        public let substituted: Bool
    }

    public let capacity: Int
    public let maximumAge: Double
    /// Kept raw values, oldest first.
    public private(set) var values: [Int32]
    /// Unix time of the last update; `nil` when empty.
    public private(set) var updated: Double?

    public init(capacity: Int = 10, maximumAge: Double = 1200, values: [Int32] = [], updated: Double? = nil) {
        self.capacity = max(1, capacity)
        self.maximumAge = maximumAge
        self.values = Array(values.suffix(max(1, capacity)))
        self.updated = values.isEmpty ? nil : updated
    }

    /// Takes the raw inverters power measured at Unix time `now`.
    public mutating func filter(_ raw: Int32, at now: Double) -> Output {
        if let updated, now - updated > maximumAge || now < updated - maximumAge {
            values.removeAll()
        }
        values.append(raw)
        if values.count > capacity { values.removeFirst(values.count - capacity) }
        updated = now
        guard raw == 0, let cached = values.last(where: { $0 != 0 }) else {
            return Output(value: raw, substituted: false)
        }
        return Output(value: cached, substituted: true)
    }
}

/// The filter's cache in a file, so that one-shot runs (`sec1000 read` from cron) behave like the
/// original tool. Writes are atomic (a temporary file renamed over the old one); a missing or
/// corrupt file reads as an empty cache.
public struct ZeroPowerCacheFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The default cache path for a device: `$XDG_CACHE_HOME/sec1000/` or `~/.cache/sec1000/`.
    public static func defaultPath(host: String, port: UInt16) -> String? {
        let base: String
        if let xdg = getenv("XDG_CACHE_HOME").map({ String(cString: $0) }), xdg.hasPrefix("/") {
            base = xdg
        } else if let home = getenv("HOME").map({ String(cString: $0) }), !home.isEmpty {
            base = home + "/.cache"
        } else {
            return nil
        }
        let safeHost = String(host.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
        return "\(base)/sec1000/inverters-power-\(safeHost)-\(port).cache"
    }

    /// The stored filter with the given parameters; empty when the file is missing or corrupt.
    public func load(capacity: Int, maximumAge: Double) -> ZeroPowerFilter {
        let empty = ZeroPowerFilter(capacity: capacity, maximumAge: maximumAge)
        guard let text = readSmallFile(path) else { return empty }
        // Format: "sec1000-zero-power-cache 1\nupdated <unix time>\nvalues <v> <v> ...\n"
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 3, lines[0] == "sec1000-zero-power-cache 1",
              lines[1].hasPrefix("updated "), let updated = Double(lines[1].dropFirst(8)), updated.isFinite,
              lines[2].hasPrefix("values")
        else { return empty }
        var values: [Int32] = []
        for token in lines[2].dropFirst(6).split(separator: " ") {
            guard let value = Int32(token) else { return empty }
            values.append(value)
        }
        return ZeroPowerFilter(capacity: capacity, maximumAge: maximumAge, values: values, updated: updated)
    }

    /// Stores `filter` atomically, creating the directory if needed.
    public func save(_ filter: ZeroPowerFilter) throws(CacheFileError) {
        let text = "sec1000-zero-power-cache 1\nupdated \(filter.updated ?? 0)\nvalues"
            + filter.values.map { " \($0)" }.joined() + "\n"
        try writeAtomically(text, to: path)
    }
}

/// A cache file that could not be written.
public struct CacheFileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let errno: Int32
    public var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
}

/// A file of at most 64 KiB as UTF-8 text; `nil` when it is missing, unreadable or not UTF-8.
public func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 65536 {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 4096) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += buffer[0..<count]
    }
    return String(validating: bytes, as: UTF8.self)
}

/// Writes `text` to a temporary file beside `path`, syncs it, and renames it over `path`.
public func writeAtomically(_ text: String, to path: String) throws(CacheFileError) {
    if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
        makeDirectories(String(path[..<slash]))
    }
    let temporary = "\(path).tmp.\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw CacheFileError(path: path, errno: errno) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw CacheFileError(path: path, errno: code)
        }
        written += count
    }
    fsync(fd)
    close(fd)
    guard rename(temporary, path) == 0 else {
        let code = errno
        unlink(temporary)
        throw CacheFileError(path: path, errno: code)
    }
    // The rename itself survives a power loss only once the directory is synced.
    let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let directoryFD = open(directory, O_RDONLY | O_CLOEXEC)
    if directoryFD >= 0 {
        fsync(directoryFD)
        close(directoryFD)
    }
}

private func makeDirectories(_ path: String) {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        mkdir(current, 0o755)
    }
}

/// The current Unix time in seconds.
public func unixTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
