#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DurableFiles

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
/// original tool. Writes are atomic (`DurableFiles.writeAtomically`: an exclusive, unguessable
/// temporary file renamed over the old one); a missing, unreadable or corrupt file reads as an
/// empty cache, since the cache only refines readings.
///
/// There is no lock: each run replaces the whole file in one step, so two runs at once (which
/// Docs/cli.md tells cron users to avoid anyway) can only lose one run's value from the cache,
/// never leave a mixed or broken file.
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
        guard let bytes = try? readSmallFile(path), let text = String(validating: bytes, as: UTF8.self) else {
            return empty
        }
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
    public func save(_ filter: ZeroPowerFilter) throws(FileError) {
        let text = "sec1000-zero-power-cache 1\nupdated \(filter.updated ?? 0)\nvalues"
            + filter.values.map { " \($0)" }.joined() + "\n"
        try writeAtomically(text, to: path)
    }
}
