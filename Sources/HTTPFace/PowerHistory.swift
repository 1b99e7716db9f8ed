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

    /// Adds `sample` of device `unit` unless it is the one already kept or comes too soon after it.
    public func record(unit: UInt8, _ sample: Sample) {
        rings.withLock { rings in
            guard var ring = rings[unit] else { return }
            if let last = ring.lastTaken, sample.taken - last < spacing { return }
            let point = Point(
                unixTime: sample.unixTime, gridPower: sample.reading.gridPower, invertersPower: sample.reading.invertersPower)
            if ring.points.count < capacity {
                ring.points.append(point)
            } else {
                ring.points[ring.next] = point
            }
            ring.next = (ring.next + 1) % capacity
            ring.lastTaken = sample.taken
            rings[unit] = ring
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

/// Samples every device's state once per poll interval into a `PowerHistory`.
///
/// A sleeping loop on the cooperative pool: it holds no thread between samples.
public struct HistoryService: Service {
    public let history: PowerHistory
    public let states: [DeviceState]

    public init(history: PowerHistory, states: [DeviceState]) {
        self.history = history
        self.states = states
    }

    public func run() async throws {
        let period = min(states.map(\.interval).min() ?? .seconds(1), history.spacing)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let now = ContinuousClock.now
                for state in states {
                    // A stale sample is not the present: the chart shows the gap.
                    if let sample = state.current.sample, state.isFresh(sample, at: now) {
                        history.record(unit: state.unit, sample)
                    }
                }
                try? await Task.sleep(for: period)
            }
        }
    }
}
