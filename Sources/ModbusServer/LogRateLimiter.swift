/// Decides which of a flood of repeated log events to write: the first of each kind from one
/// client, then one summary with a count per window.
///
/// Pure: the caller passes the time, so tests drive it with their own clock. Its memory is
/// bounded: at most `capacity` keys are tracked; events of further keys (an attacker cycling
/// source addresses) are counted together and summarized as one line.
public struct LogRateLimiter<Key: Hashable & Sendable>: Sendable {
    /// What to do with one event.
    public enum Verdict: Sendable, Equatable {
        /// Write the event's own line.
        case log
        /// Count it; a later summary reports it.
        case suppress
    }

    /// Events of one key that were not written, for a summary line.
    public struct Summary: Sendable, Equatable {
        /// `nil` for the events of keys beyond `capacity`.
        public let key: Key?
        public let count: Int
        /// How long the count was gathered.
        public let window: Duration

        public init(key: Key?, count: Int, window: Duration) {
            self.key = key
            self.count = count
            self.window = window
        }
    }

    private struct Entry: Sendable {
        var windowStart: ContinuousClock.Instant
        var suppressed = 0
    }

    public let window: Duration
    public let capacity: Int
    private var entries: [Key: Entry] = [:]
    private var overflow: Entry?

    public init(window: Duration = .seconds(60), capacity: Int = 256) {
        self.window = window
        self.capacity = max(1, capacity)
    }

    /// The number of keys tracked (at most `capacity`).
    public var trackedKeys: Int { entries.count }

    /// Judges one event of `key` at `now`. Call `expire(now:)` regularly to collect the summaries.
    public mutating func record(_ key: Key, now: ContinuousClock.Instant) -> Verdict {
        if entries[key] != nil {
            entries[key]!.suppressed += 1
            return .suppress
        }
        guard entries.count < capacity else {
            // Too many clients at once: their events are counted together, the first one written.
            if overflow == nil {
                overflow = Entry(windowStart: now)
                return .log
            }
            overflow!.suppressed += 1
            return .suppress
        }
        entries[key] = Entry(windowStart: now)
        return .log
    }

    /// Ends every window older than `window`: returns the counts that were not written and forgets
    /// those keys, so the next event of a key is written again.
    public mutating func expire(now: ContinuousClock.Instant) -> [Summary] {
        var summaries: [Summary] = []
        for (key, entry) in entries where now - entry.windowStart >= window {
            entries[key] = nil
            if entry.suppressed > 0 { summaries.append(Summary(key: key, count: entry.suppressed, window: window)) }
        }
        if let entry = overflow, now - entry.windowStart >= window {
            overflow = nil
            if entry.suppressed > 0 { summaries.append(Summary(key: nil, count: entry.suppressed, window: window)) }
        }
        return summaries
    }

    /// When `expire(now:)` next has something to do, or `nil` when nothing is tracked.
    public var nextExpiry: ContinuousClock.Instant? {
        var earliest = overflow?.windowStart
        for entry in entries.values where earliest.map({ entry.windowStart < $0 }) ?? true { earliest = entry.windowStart }
        return earliest.map { $0 + window }
    }
}
