import Foundation
import Locking
import Sockets
import TestSupport
import Threading
#if canImport(Glibc)
import Glibc
#endif

public struct MosquittoError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A real mosquitto broker (/usr/sbin/mosquitto) on a loopback port, in a directory of its own
/// with its config, its log (every packet: `log_type all`) and, with `users`, a password file.
/// Persistence is off, so a restart forgets retained messages and sessions. `kill()` and
/// `start()` again keep the port, for broker-restart tests.
public final class MosquittoBroker: Sendable {
    public static let executable = "/usr/sbin/mosquitto"

    public let port: UInt16
    public let directory: URL
    private let running = Locked<Process?>(nil)

    public var url: String { "mqtt://127.0.0.1:\(port)" }
    public var logFile: URL { directory.appendingPathComponent("mosquitto.log") }

    /// Writes the configuration on a free port; `start()` runs the broker. With `users`
    /// (name: password), anonymous clients are refused.
    /// `extraConfiguration`: more lines for mosquitto.conf (a bridge `connection` to another broker).
    public init(users: [String: String] = [:], extraConfiguration: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw MosquittoError("no mosquitto at \(Self.executable): run scripts/install-dependencies.sh")
        }
        port = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mosquitto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lines = [
            "listener \(port) 127.0.0.1",
            "persistence false",
            "log_dest file \(logFile.path)",
            "log_type all",
            "connection_messages true",
        ]
        // Run as root, mosquitto would switch to the user `mosquitto`, which cannot read this directory.
        if geteuid() == 0 { lines.append("user root") }
        if users.isEmpty {
            lines.append("allow_anonymous true")
        } else {
            let passwords = directory.appendingPathComponent("passwords")
            for (index, (name, password)) in users.sorted(by: { $0.key < $1.key }).enumerated() {
                let arguments = (index == 0 ? ["-c"] : []) + ["-b", passwords.path, name, password]
                let status = try Self.run("/usr/bin/mosquitto_passwd", arguments)
                guard status == 0 else { throw MosquittoError("mosquitto_passwd exited with \(status)") }
            }
            lines += ["allow_anonymous false", "password_file \(passwords.path)"]
        }
        lines += extraConfiguration
        try (lines.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    deinit {
        if let process = running.withLock({ $0 }), process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A broker already running, for `body`; stopped afterwards.
    public static func withBroker<T>(users: [String: String] = [:], _ body: (MosquittoBroker) async throws -> T) async throws -> T {
        let broker = try MosquittoBroker(users: users)
        try await broker.start()
        do {
            let result = try await body(broker)
            await broker.kill()
            return result
        } catch {
            await broker.kill()
            throw error
        }
    }

    /// Starts the broker and waits (at most 10 s) until it accepts TCP connections.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["-c", directory.appendingPathComponent("mosquitto.conf").path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try await launchUnmasked(process)
        running.withLock { $0 = process }
        let port = port
        let deadline = ContinuousClock.now + .seconds(10)
        while !(await offPool { Self.accepts(port: port) }) {
            // The directory goes with the broker: the error carries the log's end.
            guard process.isRunning else {
                throw MosquittoError("mosquitto exited at start: \(log().split(separator: "\n").suffix(5).joined(separator: " | "))")
            }
            guard ContinuousClock.now < deadline else { throw MosquittoError("mosquitto did not listen on \(port) within 10 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Ends the broker at once (SIGKILL: no goodbye to anyone) and waits for it.
    public func kill() async { await stop(signal: SIGKILL) }

    /// Ends the broker with SIGTERM, as an orderly broker restart does, and waits for it.
    public func terminate() async { await stop(signal: SIGTERM) }

    private func stop(signal: Int32) async {
        guard let process = running.withLock({ state -> Process? in defer { state = nil }; return state }) else { return }
        if process.isRunning { Glibc.kill(process.processIdentifier, signal) }
        await offPool { process.waitUntilExit() }
    }

    /// The broker's log so far.
    public func log() -> String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// How many PUBLISH packets the broker logged from `clientID` to `topic`.
    public func publishesReceived(from clientID: String, topic: String) -> Int {
        log().split(separator: "\n").filter { $0.contains("Received PUBLISH from \(clientID) ") && $0.contains("'\(topic)'") }.count
    }

    /// Runs a mosquitto client program (mosquitto_pub, mosquitto_sub) against this broker to its
    /// end; coreutils' `timeout` ends it after `timeout` seconds. Returns status and standard output.
    public func client(_ program: String, _ arguments: [String], timeout: Int = 10) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["\(timeout)", "/usr/bin/\(program)", "-h", "127.0.0.1", "-p", "\(port)"] + arguments
        let output = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try await launchUnmasked(process)
        return await offPool {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            try? output.fileHandleForReading.close()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// A port nothing listens on now: bound with port 0, read, closed.
    public static func freePort() throws -> UInt16 {
        // Below the ephemeral range: a port taken from it is free only until some test's outgoing
        // connection is given it as its source port, between this check and mosquitto's bind, or
        // between a broker's kill and its restart on the same port. (A broker of a full-suite CI
        // run once exited at start; its log was gone with its directory: the likely cause.)
        let ephemeralLow = ephemeralRangeStart()
        if ephemeralLow > 11_000 {
            for _ in 0..<200 {
                let port = UInt16.random(in: 10_000...UInt16(ephemeralLow - 1))
                if try bindable(port) { return port }
            }
        }
        return try bound(0)
    }

    /// The first port of the kernel's ephemeral range (32768 when it cannot be read).
    static func ephemeralRangeStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
              let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) })
        else { return 32768 }
        return first
    }

    static func bindable(_ port: UInt16) throws -> Bool {
        do { return try bound(port) == port } catch { return false }
    }

    /// Binds a socket to 127.0.0.1:`port` (0: any free one) and returns the port it got.
    static func bound(_ port: UInt16) throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MosquittoError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = port.bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw MosquittoError("bind: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Whether something accepts a TCP connection on the loopback `port` now.
    static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
