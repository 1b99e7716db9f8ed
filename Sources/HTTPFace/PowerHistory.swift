import Bridge
import Locking
import ServiceLifecycle

/// The last hour of grid and inverters power of each device, for the status page's chart.
///
/// One bounded ring per device: memory stays fixed whatever the uptime (12 bytes a point, at most
/// `capacity` points a device). One lock, one owner: `HistoryService` appends, requests copy out.
public final class PowerHistory: Sendable {
    /// One point: Unix seconds and the two powers in W.
    public struct Point: Sendable, Equatable {
        public var unixTime: UInt32
        public var gridPower: Int32
        public var invertersPower: Int32
    }

    struct Ring {
        var points: [Point] = []
        var next = 0
        var lastTaken: ContinuousClock.Instant?

        mutating func record(_ reading: Reading, capacity: Int, spacing: Duration) {
            if let last = lastTaken, reading.taken - last < spacing { return }
            let point = Point(
                unixTime: UInt32(clamping: Int64(reading.unixTime)), gridPower: reading.gridPower, invertersPower: reading.invertersPower)
            if points.count < capacity {
                points.append(point)
            } else {
                points[next] = point
            }
            next = (next + 1) % capacity
            lastTaken = reading.taken
        }
    }

    /// Points kept per device.
    public let capacity: Int
    /// The least time between two points of a device.
    public let spacing: Duration
    private let rings: Locked<[UInt8: Ring]>

    /// Keeps `window` of history with points at least `spacing` apart (at most 720 a device).
    public init(units: [UInt8], window: Duration = .seconds(3600), spacing: Duration) {
        let spacing = max(spacing, window / 720)
        self.spacing = spacing
        capacity = max(1, Int((window / spacing).rounded(.up)))
        rings = Locked(Dictionary(units.map { ($0, Ring()) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Adds `reading` of device `unit` unless it comes too soon after the last one kept; a device
    /// added on reload gets its ring with its first reading.
    public func record(unit: UInt8, _ reading: Reading) {
        rings.withLock { rings in
            // In place: a copy of the ring taken out of the dictionary would copy its points at each write.
            rings[unit, default: Ring()].record(reading, capacity: capacity, spacing: spacing)
        }
    }

    /// Device `unit`'s points, oldest first.
    public func points(unit: UInt8) -> [Point] {
        rings.withLock { rings in
            guard let ring = rings[unit] else { return [] }
            guard ring.points.count == capacity else { return ring.points }
            return Array(ring.points[ring.next...] + ring.points[..<ring.next])
        }
    }
}

/// Keeps every device's good polls in a `PowerHistory`, as the bridge's reading broadcast hands
/// them out: a subscriber like any other front end, holding no thread between polls.
public struct HistoryService: Service {
    public let history: PowerHistory
    private let readings: ReadingBroadcast

    public init(history: PowerHistory, readings: ReadingBroadcast) {
        self.history = history
        self.readings = readings
    }

    public func run() async throws {
        for await update in readings.subscribe().cancelOnGracefulShutdown() {
            history.record(unit: update.unit, update.reading)
        }
    }
}
