/// Messages waiting for a connection, at most one per topic: a newer message replaces the older
/// one, so memory is bounded by the number of topics however long the broker stays away.
/// Taken from the front a few at a time, in the order of the latest put per topic.
struct Outbox {
    private var entries: [String: (order: UInt64, message: MQTTMessage)] = [:]
    /// Topics in the order of their puts (the counter only grows, so appending keeps it sorted).
    /// An element whose order is no longer its topic's is stale and skipped; compaction keeps
    /// the stale ones fewer than the live ones, so replacing messages does not grow it.
    private var order: [(order: UInt64, topic: String)] = []
    private var head = 0
    private var counter: UInt64 = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    /// Elements of the order list, stale ones included: for tests of its bound.
    var orderLength: Int { order.count - head }

    /// Keeps `message` for its topic; true when it replaced an older one.
    @discardableResult
    mutating func put(_ message: MQTTMessage) -> Bool {
        counter += 1
        order.append((counter, message.topic))
        let replaced = entries.updateValue((counter, message), forKey: message.topic) != nil
        if order.count - head > 2 * entries.count + 64 { compact() }
        return replaced
    }

    /// The oldest message (by its latest put), removed; nil when empty.
    mutating func popFirst() -> MQTTMessage? {
        while head < order.count {
            let (position, topic) = order[head]
            head += 1
            guard let entry = entries[topic], entry.order == position else { continue }
            entries[topic] = nil
            if entries.isEmpty {
                order.removeAll(keepingCapacity: false)
                head = 0
            } else if head > 64 && head > order.count / 2 {
                order.removeFirst(head)
                head = 0
            }
            return entry.message
        }
        return nil
    }

    /// Everything, in the order of the latest put per topic, leaving the outbox empty.
    mutating func takeAll() -> [MQTTMessage] {
        var messages: [MQTTMessage] = []
        messages.reserveCapacity(entries.count)
        while let message = popFirst() { messages.append(message) }
        return messages
    }

    private mutating func compact() {
        order = entries.map { (order: $0.value.order, topic: $0.key) }.sorted { $0.order < $1.order }
        head = 0
    }
}
