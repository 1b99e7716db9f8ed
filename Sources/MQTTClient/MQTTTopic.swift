import CMosquitto

/// Topic and topic-filter checks (MQTT 3.1.1, section 4.7), by libmosquitto's own pure functions,
/// which take no lock and may run on any thread.
public enum MQTTTopic {
    /// Why `topic` cannot be published to, or nil when it can.
    public static func publishProblem(_ topic: String) -> String? {
        if let problem = commonProblem(topic) { return problem }
        let status = topic.withCString { mosquitto_pub_topic_check2($0, topic.utf8.count) }
        return status == Int32(MOSQ_ERR_SUCCESS.rawValue) ? nil : "a topic to publish to may not contain + or #"
    }

    /// Why `filter` cannot be subscribed to, or nil when it can.
    public static func filterProblem(_ filter: String) -> String? {
        if let problem = commonProblem(filter) { return problem }
        let status = filter.withCString { mosquitto_sub_topic_check2($0, filter.utf8.count) }
        return status == Int32(MOSQ_ERR_SUCCESS.rawValue)
            ? nil : "+ must fill a whole level and # must be the whole last level"
    }

    /// Whether `topic` matches the subscription `filter`.
    public static func matches(filter: String, topic: String) -> Bool {
        var result = false
        let status = filter.withCString { filterPointer in
            topic.withCString { mosquitto_topic_matches_sub2(filterPointer, filter.utf8.count, $0, topic.utf8.count, &result) }
        }
        return status == Int32(MOSQ_ERR_SUCCESS.rawValue) && result
    }

    private static func commonProblem(_ topic: String) -> String? {
        if topic.isEmpty { return "a topic may not be empty" }
        if topic.utf8.count > 65535 { return "a topic may not be longer than 65535 bytes" }
        if topic.utf8.contains(0) { return "a topic may not contain a NUL character" }
        return nil
    }
}
