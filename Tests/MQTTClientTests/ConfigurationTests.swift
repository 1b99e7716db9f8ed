@testable import MQTTClient
import Testing

@Suite struct BrokerURLTests {
    @Test(arguments: [
        ("mqtt://broker.example", "broker.example", 1883, false),
        ("mqtt://10.0.0.5:1884", "10.0.0.5", 1884, false),
        ("mqtts://broker.example", "broker.example", 8883, true),
        ("mqtts://broker.example:443/", "broker.example", 443, true),
        ("mqtt://[::1]", "::1", 1883, false),
        ("mqtts://[fe80::1]:8884", "fe80::1", 8884, true),
    ])
    func parsesGoodURLs(url: String, host: String, port: Int, tls: Bool) throws {
        let address = try MQTTBrokerAddress(url: url)
        #expect(address.host == host)
        #expect(Int(address.port) == port)
        #expect(address.tls == tls)
    }

    @Test(arguments: [
        ("http://broker", "must start with mqtt://"),
        ("broker:1883", "must start with mqtt://"),
        ("mqtt://", "host is missing"),
        ("mqtt://:1883", "host is missing"),
        ("mqtt://broker:0", "not a number from 1 to 65535"),
        ("mqtt://broker:65536", "not a number from 1 to 65535"),
        ("mqtt://broker:abc", "not a number from 1 to 65535"),
        ("mqtt://user:secret@broker", "credentials do not belong in the URL"),
        ("mqtt://broker/sec1000", "no path"),
        ("mqtt://::1", "must be written in brackets"),
        ("mqtt://[::1", "closing ]"),
        ("mqtt://[::1]x", "only :PORT may follow"),
        ("mqtt://[example]", "not an IPv6 address"),
        ("mqtt://bro ker", "not a host name"),
    ])
    func refusesBadURLs(url: String, reason: String) {
        #expect {
            _ = try MQTTBrokerAddress(url: url)
        } throws: { error in
            guard let error = error as? MQTTConfigurationError, case .invalidBrokerURL(let text, _) = error else { return false }
            return text == url && error.description.contains(reason)
        }
    }

    @Test func describesAddressesAsURLs() throws {
        #expect(try MQTTBrokerAddress(url: "mqtt://[::1]").description == "mqtt://[::1]:1883")
        #expect(try MQTTBrokerAddress(url: "mqtts://host").description == "mqtts://host:8883")
    }
}

@Suite struct ConfigurationValidationTests {
    private func configuration(_ url: String = "mqtts://broker") throws -> MQTTConfiguration {
        try MQTTConfiguration(url: url, clientID: "sec1000-test")
    }

    @Test func refusesInconsistentOptions() throws {
        var passwordOnly = try configuration()
        passwordOnly.password = "secret"
        #expect(throws: MQTTConfigurationError.passwordWithoutUsername) { try passwordOnly.validate() }

        var certificateOnly = try configuration()
        certificateOnly.certificateFile = "/etc/hostname"
        #expect(throws: MQTTConfigurationError.certificateWithoutKey) { try certificateOnly.validate() }

        var keyOnly = try configuration()
        keyOnly.keyFile = "/etc/hostname"
        #expect(throws: MQTTConfigurationError.keyWithoutCertificate) { try keyOnly.validate() }

        var caWithoutTLS = try configuration("mqtt://broker")
        caWithoutTLS.caFile = "/etc/hostname"
        #expect(throws: MQTTConfigurationError.tlsOptionWithoutTLS("CA file")) { try caWithoutTLS.validate() }

        var noKeepalive = try configuration()
        noKeepalive.keepalive = 0
        #expect(throws: MQTTConfigurationError.invalidKeepalive(0)) { try noKeepalive.validate() }

        var emptyID = try configuration()
        emptyID.clientID = ""
        #expect(throws: MQTTConfigurationError.self) { try emptyID.validate() }

        var badWill = try configuration()
        badWill.will = MQTTMessage(topic: "sec1000/#", payload: "offline")
        #expect(throws: MQTTConfigurationError.self) { try badWill.validate() }
    }

    @Test func namesAnUnreadableFile() throws {
        var missingCA = try configuration()
        missingCA.caFile = "/nonexistent/ca.pem"
        #expect {
            try missingCA.validate()
        } throws: { error in
            "\(error)".contains("cannot read the MQTT CA file /nonexistent/ca.pem") && "\(error)".contains("No such file")
        }
    }

    @Test func neverShowsThePassword() throws {
        var configuration = try configuration()
        configuration.username = "alice"
        configuration.password = "hunter2-secret"
        try configuration.validate()
        #expect(!configuration.description.contains("hunter2"))
        #expect(configuration.description.contains("password set"))
    }

    @Test func backOffDoublesUpToTheCap() {
        let policy = MQTTReconnectPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(5))
        let delays = (0..<7).map { policy.delay(afterFailures: $0) }
        #expect(delays == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5), .seconds(5)])
        #expect(policy.delay(afterFailures: 10_000) == .seconds(5))
    }

    @Test func topicChecks() {
        #expect(MQTTTopic.publishProblem("sec1000/status") == nil)
        #expect(MQTTTopic.publishProblem("sec1000/+/state") != nil)
        #expect(MQTTTopic.publishProblem("") != nil)
        #expect(MQTTTopic.filterProblem("sec1000/+/set/#") == nil)
        #expect(MQTTTopic.filterProblem("sec1000/a#") != nil)
        #expect(MQTTTopic.matches(filter: "sec1000/+/set/#", topic: "sec1000/dev1/set/export_limit"))
        #expect(!MQTTTopic.matches(filter: "sec1000/+/set/#", topic: "sec1000/dev1/state"))
    }
}

@Suite struct OutboxTests {
    @Test func keepsTheLatestPerTopicInPublicationOrder() {
        var outbox = Outbox()
        for value in 1...1000 {
            outbox.put(MQTTMessage(topic: "a", payload: "\(value)"))
            outbox.put(MQTTMessage(topic: "b", payload: "\(value)"))
        }
        outbox.put(MQTTMessage(topic: "a", payload: "last"))
        #expect(outbox.count == 2)
        let messages = outbox.takeAll()
        #expect(messages.map(\.topic) == ["b", "a"])
        #expect(messages.map(\.text) == ["1000", "last"])
        #expect(outbox.isEmpty)
    }

    @Test func popsInOrderWhilePutsGoOnAndStaysBoundedByItsTopics() {
        var outbox = Outbox()
        for value in 1...3 { outbox.put(MQTTMessage(topic: "t\(value)", payload: "\(value)")) }
        #expect(outbox.popFirst()?.topic == "t1")
        // t2 published again: it moves behind t3.
        outbox.put(MQTTMessage(topic: "t2", payload: "again"))
        outbox.put(MQTTMessage(topic: "t4", payload: "4"))
        var order: [String] = []
        while let message = outbox.popFirst() { order.append("\(message.topic)=\(message.text)") }
        #expect(order == ["t3=3", "t2=again", "t4=4"])
        #expect(outbox.isEmpty && outbox.orderLength == 0)

        // A long outage replacing the same 100 topics: the order list does not grow with it.
        var longest = 0
        for value in 0..<100_000 {
            outbox.put(MQTTMessage(topic: "device/\(value % 100)", payload: "\(value)"))
            longest = max(longest, outbox.orderLength)
        }
        #expect(outbox.count == 100)
        #expect(longest <= 2 * 100 + 65)
        let drained = outbox.takeAll()
        #expect(drained.map(\.topic) == (0..<100).map { "device/\($0)" })
        #expect(drained.first?.text == "99900")
    }
}
