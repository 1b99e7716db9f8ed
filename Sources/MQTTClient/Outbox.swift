/// Messages waiting for a connection, at most one per topic: a newer message replaces the older
/// one, so memory is bounded by the number of topics however long the broker stays away.
struct Outbox {
    private var entries: [String: (order: UInt64, message: MQTTMessage)] = [:]
    private var counter: UInt64 = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Keeps `message` for its topic; true when it replaced an older one.
    @discardableResult
    mutating func put(_ message: MQTTMessage) -> Bool {
        counter += 1
        return entries.updateValue((counter, message), forKey: message.topic) != nil
    }

    /// Everything, in the order of the latest put per topic, leaving the outbox empty.
    mutating func takeAll() -> [MQTTMessage] {
        defer { entries.removeAll(keepingCapacity: false) }
        return entries.values.sorted { $0.order < $1.order }.map(\.message)
    }
}
