import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import Testing

/// Each typed error provoked over a real loopback socket: callers switch on these cases to decide
/// what to log and whether to retry, so the mapping from what the wire did must hold.
///
/// Time bounds here are far from the failure they catch (a wait that the timeout does not end), so
/// that a machine busy with other builds does not fail them.
@Suite("Transaction errors over loopback")
struct ErrorTests {
    @Test func nothingListeningIsRefused() async throws {
        #expect(await failure(of: makeClient(port: try closedPort())) == .refused)
    }

    @Test func hangingDeviceTimesOutInTheReceiveStage() async throws {
        try await withDevice(faults: FaultRates(hang: 1)) { device in
            let client = makeClient(port: device.port, timeouts: Timeouts(connect: .seconds(1), answer: .milliseconds(300)))
            let start = ContinuousClock.now
            #expect(await failure(of: client) == .timeout(stage: .receive, received: []))
            let elapsed = start.elapsed
            #expect(elapsed >= .milliseconds(300), "gave up before the answer timeout")
            #expect(elapsed < .seconds(5), "the answer timeout does not bound the wait")
        }
    }

    @Test func unansweredConnectTimesOutInTheConnectStage() async throws {
        try await withUnansweredConnects { port in
            let client = makeClient(port: port, timeouts: Timeouts(connect: .milliseconds(300), answer: .seconds(5)))
            let start = ContinuousClock.now
            #expect(await failure(of: client) == .timeout(stage: .connect, received: []))
            let elapsed = start.elapsed
            #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(5), "took \(elapsed)")
        }
    }

    @Test func droppedConnectionIsAReset() async throws {
        try await withDevice(faults: FaultRates(drop: 1)) { device in
            #expect(await failure(of: makeClient(port: device.port)) == .reset(received: []))
        }
    }

    @Test func statusFrameInsteadOfDataIsAShortAnswer() async throws {
        try await withDevice(faults: FaultRates(shortAnswer: 1)) { device in
            let statusFrame: [UInt8] = [0x04, 0x52, 0x45, 0x56, 0x4F, 0x00, 0x06, 0x01, 0x01, 0x0B, 0x15, 0x00, 0x22]
            #expect(await failure(of: makeClient(port: device.port)) == .shortAnswer(status: 0x15, received: statusFrame))
        }
    }

    @Test func wrongChecksumIsAChecksumMismatch() async throws {
        try await withDevice(faults: FaultRates(badChecksum: 1)) { device in
            var corrupted = goldenAnswer
            corrupted[55] += 1
            #expect(await failure(of: makeClient(port: device.port))
                == .checksumMismatch(received: 0x0F43, computed: 0x0F42, frame: corrupted))
        }
    }

    /// The simulator cuts the frame at a seeded random point; several seeds give several cuts.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func answerCutShortIsMalformedWithTheBytesThatArrived(seed: UInt64) async throws {
        try await withDevice(faults: FaultRates(truncate: 1), seed: seed) { device in
            let error = try #require(await failure(of: makeClient(port: device.port)))
            // A close after part of a frame is a bad answer, not a network reset: the device spoke.
            guard case .malformed(let reason, let received) = error else {
                Issue.record("expected .malformed, got \(error)")
                return
            }
            #expect(!received.isEmpty && received.count < goldenAnswer.count)
            #expect(goldenAnswer.starts(with: received), "received bytes are not a prefix of the frame")
            #expect(reason.contains("closed"))
        }
    }

    @Test func answerForAnotherCommandIsAnUnexpectedCommand() async throws {
        let settings = ResponseEncoder.encode(.exportSettings(
            ExportSettings(mode: .byValue, totalCapacity: 8000, ctRatio: 1, exportLimit: 5000)))
        let server = try ScriptedServer([.send(settings), .holdOpen(limit: .seconds(5))])
        let error = await failure(of: makeClient(port: server.port))
        #expect(await server.finish())
        #expect(error == .unexpectedCommand(expected: 0x0B, received: 0x43, frame: settings))
        #expect(server.request == [0x00, 0x05, 0x01, 0x01, 0x0B, 0x00, 0x0D])
    }

    /// Something other than a SEC1000 on the port: the client gives up at the first wrong byte
    /// instead of waiting for a length byte, or a frame, that will never come.
    @Test func garbageFailsAtTheFirstWrongByte() async throws {
        let garbage = Array("HTTP".utf8)
        let server = try ScriptedServer([.send(garbage), .holdOpen(limit: .seconds(10))])
        let start = ContinuousClock.now
        let error = await failure(of: makeClient(port: server.port, timeouts: Timeouts(connect: .seconds(2), answer: .seconds(10))))
        let elapsed = start.elapsed
        #expect(await server.finish())
        guard case .malformed(_, let received)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(!received.isEmpty && garbage.starts(with: received))
        #expect(elapsed < .seconds(5), "waited for more bytes instead of failing at once")
    }

    struct BadFrame: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        var testDescription: String { name }
    }

    /// Frames with a valid prefix that break the layout further in, each with a correct checksum
    /// where it has one, so only the named defect can be what the client objects to.
    static let badFrames: [BadFrame] = [
        BadFrame(name: "non-zero byte before the length", bytes: [0x04, 0x52, 0x45, 0x56, 0x4F, 0x01, 0x31]),
        BadFrame(name: "length below the minimum", bytes: [0x04, 0x52, 0x45, 0x56, 0x4F, 0x00, 0x02]),
        BadFrame(name: "settings-sized frame echoing 0x0B",
                 bytes: ResponseEncoder.frame(command: 0x0B, payload: [UInt8](repeating: 0, count: 13))),
        BadFrame(name: "marker 02 01 instead of 01 01", bytes: {
            let body: [UInt8] = [0x02, 0x01, 0x0B] + capturedMeasurements.payload
            let sum = body.reduce(UInt16(0)) { $0 &+ UInt16($1) }
            return Frame.responsePrefix + [0x00, UInt8(body.count + 2)] + body + [UInt8(sum >> 8), UInt8(sum & 0xFF)]
        }()),
    ]

    @Test(arguments: badFrames)
    func layoutErrorIsMalformed(frame: BadFrame) async throws {
        let server = try ScriptedServer([.send(frame.bytes), .holdOpen(limit: .seconds(5))])
        let error = await failure(of: makeClient(port: server.port))
        #expect(await server.finish())
        guard case .malformed(_, let received)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(received == frame.bytes)
    }

    @Test func closeWithoutAnsweringIsAResetWithNoBytes() async throws {
        let server = try ScriptedServer([])
        #expect(await failure(of: makeClient(port: server.port)) == .reset(received: []))
        #expect(await server.finish())
    }

    /// TCP may deliver a frame in any number of pieces; the client must assemble it, and end the
    /// transaction as soon as the length byte's frame is complete, without waiting for the close.
    @Test func frameInOneByteSegmentsDecodesAndEndsTheTransaction() async throws {
        let script: [ScriptedServer.Step] = goldenAnswer.flatMap { [.send([$0]), .pause(.milliseconds(2))] }
        let server = try ScriptedServer(script + [.holdOpen(limit: .seconds(10))])
        let client = makeClient(port: server.port, timeouts: Timeouts(connect: .seconds(2), answer: .seconds(10)))
        let start = ContinuousClock.now
        let response = try await client.send(.readMeasurements)
        let elapsed = start.elapsed
        #expect(response == .measurements(capturedMeasurements))
        #expect(elapsed < .seconds(5), "the client waited for the connection to close or time out")
        #expect(await server.finish())
        #expect(server.sawClientClose, "the client kept the connection open after its transaction")
    }

    /// Bytes behind the frame, even in the same segment, are none of the client's business: it
    /// must read no further than the length byte says.
    @Test func bytesAfterTheFrameAreNotRead() async throws {
        let server = try ScriptedServer([
            .send(Array(goldenAnswer.prefix(20))), .pause(.milliseconds(20)),
            .send(Array(goldenAnswer.dropFirst(20)) + Array("not part of the frame".utf8)),
            .holdOpen(limit: .seconds(10)),
        ])
        let response = try await makeClient(port: server.port).send(.readMeasurements)
        #expect(response == .measurements(capturedMeasurements))
        #expect(await server.finish())
    }
}
