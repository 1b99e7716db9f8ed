import Dispatch
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import TestSupport
import Testing

/// The retry policy cures the device's transient faults; pacing keeps the fragile device from
/// being overloaded; cancellation must free a caller at once, whatever the device does.
///
/// Time bounds are far from the failures they catch (waiting out a 10 s timeout or pause), so
/// that a machine busy with other builds does not fail them.
@Suite("Retries, pacing and cancellation")
struct RetryAndPacingTests {
    @Test func everyAttemptIsReportedAndTheLastErrorThrown() async throws {
        try await withDevice(faults: FaultRates(shortAnswer: 1)) { device in
            var failures: [(attempt: Int, error: SEC1000Error)] = []
            let client = makeClient(port: device.port)
            let statusFrame = ResponseEncoder.frame(command: 0x0B, payload: [0x15])
            await #expect(throws: SEC1000Error.shortAnswer(status: 0x15, received: statusFrame)) {
                _ = try await client.readMeasurements(policy: RetryPolicy(attempts: 3, wait: .milliseconds(10))) {
                    failures.append(($0, $1))
                }
            }
            #expect(failures.map(\.attempt) == [1, 2, 3])
            #expect(failures.allSatisfy { $0.error == .shortAnswer(status: 0x15, received: statusFrame) })
            // Each attempt is one connection, and none is made after the policy is spent.
            #expect(await waitUntil { device.records.count >= 3 })
            #expect(device.records.count == 3)
        }
    }

    /// The caller sees the latest fault, not the first: the device changes its fault between tries.
    @Test func thrownErrorIsTheLastAttempts() async throws {
        try await withDevice(faults: FaultRates(shortAnswer: 1)) { device in
            var errors: [SEC1000Error] = []
            let client = makeClient(port: device.port)
            await #expect(throws: SEC1000Error.reset(received: [])) {
                _ = try await client.readMeasurements(policy: RetryPolicy(attempts: 2, wait: .milliseconds(10))) { _, error in
                    errors.append(error)
                    device.setFaults(FaultRates(drop: 1))
                }
            }
            #expect(errors.count == 2)
            #expect(errors.last == .reset(received: []))
        }
    }

    /// Seed 3 makes the first few answers short, so the retries are really exercised.
    @Test func flakyDeviceIsReadAfterRetries() async throws {
        let attempts = 20
        try await withDevice(faults: FaultRates(shortAnswer: 0.5), seed: 3) { device in
            var failures: [Int] = []
            let client = makeClient(port: device.port)
            let measurements = try await client.readMeasurements(policy: RetryPolicy(attempts: attempts, wait: .milliseconds(10))) {
                attempt, _ in failures.append(attempt)
            }
            #expect(measurements == capturedMeasurements)
            #expect(!failures.isEmpty, "the seed no longer produces a short answer first; pick another")
            #expect(failures.count < attempts)
            #expect(failures == Array(1..<(failures.count + 1)))
            #expect(await waitUntil { device.records.count >= failures.count + 1 })
            let records = device.records
            #expect(records.count == failures.count + 1)
            #expect(records.dropLast().allSatisfy { $0.fault == .shortAnswer })
            #expect(records.last?.fault == nil)
        }
    }

    /// The device breaks when two transactions overlap or follow too closely; a client shared by
    /// several callers must queue them and keep the gap between the end of one and the next.
    @Test func concurrentCallersAreSerializedAndSpaced() async throws {
        let gap = Duration.milliseconds(200)
        let callers = 5
        try await withDevice { device in
            let client = makeClient(port: device.port, gap: gap)
            let answers = try await withThrowingTaskGroup(of: Response.self) { group in
                for _ in 0..<callers {
                    group.addTask { try await client.send(.readMeasurements) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers == Array(repeating: .measurements(capturedMeasurements), count: callers))
            #expect(await waitUntil { device.records.count >= callers })
            let records = device.records.sorted { $0.opened < $1.opened }
            let start = records.first?.opened ?? .now
            let timeline = records.map { record in
                "#\(record.connection) opened \(record.opened - start) answered \((record.answered ?? start) - start) closed \(record.closed - start) concurrent \(record.concurrent)"
            }.joined(separator: "; ")
            #expect(device.maximumConcurrency == 1, "\(timeline)")
            #expect(records.count == callers)
            // The device notes a close when its thread wakes, which on two busy cores can be tens of
            // milliseconds after the client's; a missing gap would measure about zero.
            let slack = Duration.milliseconds(100)
            for (previous, next) in zip(records, records.dropFirst()) {
                #expect(next.opened >= previous.closed, "transactions overlapped: \(timeline)")
                #expect(next.opened - previous.closed >= gap - slack, "only \(next.opened - previous.closed) between transactions")
            }
        }
    }

    @Test func cancellingAReadFromAHangingDeviceEndsItAtOnce() async throws {
        let server = try ScriptedServer([.holdOpen(limit: .seconds(10))])
        let client = makeClient(port: server.port, timeouts: Timeouts(connect: .seconds(10), answer: .seconds(10)))
        let reading = Task { await failure(of: client) }
        // Cancel only once the client is blocked waiting for an answer that will never come.
        #expect(await server.waitForRequest())
        let cancelled = ContinuousClock.now
        reading.cancel()
        let error = await reading.value
        #expect(error == .cancelled)
        #expect(cancelled.elapsed < .seconds(3), "cancellation waited for the answer timeout")
        #expect(await server.finish())
        #expect(server.sawClientClose, "the cancelled client left its connection open")
    }

    @Test func cancellingDuringTheRetryWaitEndsTheRetries() async throws {
        try await withDevice(faults: FaultRates(shortAnswer: 1)) { device in
            let client = makeClient(port: device.port)
            let firstFailure = DispatchSemaphore(value: 0)
            let reading = Task { () -> SEC1000Error? in
                do throws(SEC1000Error) {
                    _ = try await client.readMeasurements(policy: RetryPolicy(attempts: 5, wait: .seconds(60))) { _, _ in
                        firstFailure.signal()
                    }
                    return nil
                } catch {
                    return error
                }
            }
            // Generous bounds for a busy machine; the pause being cut short is 60 s.
            #expect(await firstFailure.wait(upTo: .seconds(20)))
            let cancelled = ContinuousClock.now
            reading.cancel()
            #expect(await reading.value == .cancelled)
            #expect(cancelled.elapsed < .seconds(15), "cancellation waited out the retry pause")
            #expect(await waitUntil { device.records.count >= 1 })
            #expect(device.records.count == 1, "an attempt was made after cancellation")
        }
    }

    /// Cancelling must win over a connect that hangs (a device that is off): the caller must hear
    /// `.cancelled`, not a network fault that it would log and retry.
    @Test func cancellingAHangingConnectIsACancellation() async throws {
        try await withUnansweredConnects { port in
            let client = makeClient(port: port, timeouts: Timeouts(connect: .seconds(10), answer: .seconds(10)))
            let reading = Task { await failure(of: client) }
            #expect(await waitUntil { connectIsPending(toPort: port) }, "the client never started connecting")
            let cancelled = ContinuousClock.now
            reading.cancel()
            let error = await reading.value
            // Far below the 10 s connect timeout it must not wait for, so a busy machine does not fail it.
            #expect(cancelled.elapsed < .seconds(8), "cancellation waited for the connect timeout")
            #expect(error == .cancelled)
        }
    }

    /// The gap before a transaction can be long (the device wants 5 s or more between requests);
    /// a caller cancelled meanwhile, such as the bridge shutting down, must not sit it out.
    @Test func cancellingASendWaitingForItsTurnEndsItAtOnce() async throws {
        try await withDevice { device in
            // A gap far longer than the bound below, which leaves room for a busy machine.
            let client = makeClient(port: device.port, gap: .seconds(60))
            _ = try await client.send(.readMeasurements)
            // Cancelled at once: whether the send is still queued or already in the gap, it must end now.
            let reading = Task { await failure(of: client) }
            let cancelled = ContinuousClock.now
            reading.cancel()
            #expect(await reading.value == .cancelled)
            let elapsed = cancelled.elapsed
            #expect(elapsed < .seconds(15), "cancellation waited \(elapsed) for the gap")
            #expect(await waitUntil { device.records.count >= 1 })
            #expect(device.records.count == 1, "the cancelled send still reached the device")
        }
    }
}
