#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import Foundation
import Locking
import Sockets
import Threading
import TestSupport
import Testing

/// Signals a daemon meets in the field (issue 14, defect 7): SIGHUP from a closed terminal or a
/// reflexive `systemctl reload`, and SIGPIPE from a log reader that went away. Neither may end the
/// bridge; the energy counters are saved whenever it does stop.
@Suite("Signals and a broken log pipe", .timeLimit(.minutes(2)))
struct SignalTests {
    /// Saves only at start and at shutdown, so a counter above zero in the file proves the final save.
    static func options(_ path: String) -> [String] {
        ["--energy-state", path, "--energy-save-interval", "3600", "--log-level", "info"]
    }

    static func production(_ path: String) -> Double? { (try? EnergyStateFile(path: path).load())?[1]?.counters.production }

    static func inverterPower(_ port: UInt16) async -> Int32? {
        await offPool { (try? ModbusClient(port: port))?.read(20, 2).values.map(int32s)?.first }
    }

    /// Register 202-203: good polls so far. Two make the first energy step.
    static func goodPolls(_ port: UInt16) async -> Int32 {
        await offPool { (try? ModbusClient(port: port))?.read(202, 2).values.map(int32s)?.first } ?? 0
    }

    @Test func sighupIsLoggedAndIgnoredAndSIGTERMStillSaves() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let errors = Pipe()
            let log = StreamText(errors.fileHandleForReading)
            let bridge = try await BridgeProcess.start(Self.options(path), errors: errors)
            defer { bridge.stop() }
            try await waitUntil("two good polls", timeout: .seconds(20)) { await Self.goodPolls(bridge.port) >= 2 }
            kill(bridge.process.processIdentifier, SIGHUP)
            try await waitUntil("the SIGHUP log line", timeout: .seconds(10)) { log.text.contains("SIGHUP received") }
            // It serves on, and after another poll stops cleanly on SIGTERM with the counters saved.
            #expect(await Self.inverterPower(bridge.port) == 3386)
            #expect(bridge.process.isRunning)
            kill(bridge.process.processIdentifier, SIGTERM)
            #expect(await bridge.exits(within: 10))
            #expect(bridge.process.terminationReason == .exit && bridge.process.terminationStatus == 0)
            #expect((Self.production(path) ?? 0) > 0, "the final save holds the polls' production")
        }
    }

    @Test func aClosedStandardErrorPipeDoesNotKillTheBridge() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let errors = Pipe()
            let bridge = try await BridgeProcess.start(Self.options(path), errors: errors)
            defer { bridge.stop() }
            try await waitUntil("two good polls", timeout: .seconds(20)) { await Self.goodPolls(bridge.port) >= 2 }
            // The reader goes away: every later log line meets a pipe nobody reads.
            try errors.fileHandleForReading.close()
            try? errors.fileHandleForWriting.close()
            // A client that sends garbage is logged (info) as it is closed: the write that used to kill.
            let port = bridge.port
            let answer = await offPool { rawExchange(port: port, Array("GET / HTTP/1.1\r\n\r\n".utf8)) }
            #expect(answer.isEmpty)
            #expect(await Self.inverterPower(bridge.port) == 3386, "the bridge still serves after writing to a broken pipe")
            kill(bridge.process.processIdentifier, SIGTERM)
            #expect(await bridge.exits(within: 10))
            #expect(bridge.process.terminationReason == .exit && bridge.process.terminationStatus == 0)
            #expect((Self.production(path) ?? 0) > 0, "the final save holds the polls' production")
        }
    }
}
