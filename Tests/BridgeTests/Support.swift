import Bridge
import CModbus
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import SEC1000Client
import SEC1000Protocol
import SEC1000Simulator
import ServiceLifecycle
import Sockets
import Threading
import Locking
import TestSupport
import Testing

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// What a Modbus read returned: registers, or an exception code, or a transport failure.
enum ReadOutcome: Equatable, Sendable {
    case registers([UInt16])
    case exception(UInt8)
    case failed(String)

    var values: [UInt16]? { if case .registers(let v) = self { v } else { nil } }
}

/// libmodbus's own client, from Swift. Blocking: call it through `offPool`.
final class ModbusClient: @unchecked Sendable {
    // The context is used by one test at a time, from one thread at a time (each call is
    // awaited before the next); libmodbus contexts are not shared.
    private let context: OpaquePointer

    init(port: UInt16, unit: Int32 = 1) throws {
        let descriptor = try Self.connect(port: port)
        // Configured in a local first: a class whose init throws after its properties are set
        // runs deinit, which would free the context a second time.
        let context = modbus_new_tcp("127.0.0.1", Int32(port))!
        modbus_set_slave(context, unit)
        modbus_set_response_timeout(context, 3, 0)
        modbus_set_socket(context, descriptor)
        self.context = context
    }

    /// A connection to the bridge, made here rather than by `modbus_connect`: libmodbus waits in
    /// `select()`, from its connect on, and glibc aborts the whole process for a descriptor at or
    /// beyond FD_SETSIZE, which a test process with many tests in flight can reach. Such a
    /// descriptor fails this client alone. Non-blocking with TCP_NODELAY, as libmodbus makes its own.
    private static func connect(port: UInt16) throws -> Int32 {
        func failure(_ call: String, _ code: Int32 = errno) -> ClientError {
            ClientError(message: "\(call): \(String(cString: strerror(code)))")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        guard fd < FD_SETSIZE else {
            close(fd)
            throw ClientError(message: "descriptor \(fd) is beyond select()'s FD_SETSIZE (\(FD_SETSIZE))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if status != 0 {
            guard errno == EINPROGRESS else { let error = failure("connect"); close(fd); throw error }
            // The 3 s libmodbus gives a connect.
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&entry, 1, 3000) == 1 else { close(fd); throw failure("connect", ETIMEDOUT) }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { close(fd); throw failure("connect", error) }
        }
        return fd
    }

    deinit {
        modbus_close(context)
        modbus_free(context)
    }

    struct ClientError: Error { let message: String }

    func setUnit(_ unit: Int32) { modbus_set_slave(context, unit) }

    /// Function 03 (holding) or 04 (input).
    func read(_ address: Int, _ count: Int, input: Bool = false) -> ReadOutcome {
        var registers = [UInt16](repeating: 0, count: max(count, 1))
        let status = input
            ? modbus_read_input_registers(context, Int32(address), Int32(count), &registers)
            : modbus_read_registers(context, Int32(address), Int32(count), &registers)
        return outcome(status) { .registers(Array(registers.prefix(count))) }
    }

    func writeRegister(_ address: Int, _ value: UInt16) -> ReadOutcome {
        outcome(modbus_write_register(context, Int32(address), value)) { .registers([]) }
    }

    func writeRegisters(_ address: Int, _ values: [UInt16]) -> ReadOutcome {
        outcome(modbus_write_registers(context, Int32(address), Int32(values.count), values)) { .registers([]) }
    }

    func writeBit(_ address: Int, _ on: Bool) -> ReadOutcome {
        outcome(modbus_write_bit(context, Int32(address), on ? 1 : 0)) { .registers([]) }
    }

    func readBits(_ address: Int, _ count: Int, discrete: Bool = false) -> ReadOutcome {
        var bits = [UInt8](repeating: 0, count: count)
        let status = discrete
            ? modbus_read_input_bits(context, Int32(address), Int32(count), &bits)
            : modbus_read_bits(context, Int32(address), Int32(count), &bits)
        return outcome(status) { .registers([]) }
    }

    private func outcome(_ status: Int32, success: () -> ReadOutcome) -> ReadOutcome {
        if status >= 0 { return success() }
        let code = errno - sec1000_modbus_enobase
        if (1...0x0B).contains(code) { return .exception(UInt8(code)) }
        return .failed(String(cString: modbus_strerror(errno)))
    }
}

/// Sends raw bytes on a fresh connection and returns the answer (for frames libmodbus's client
/// refuses to build). Empty when the server closes without answering.
func rawExchange(port: UInt16, _ request: [UInt8], timeout: Duration = .seconds(3)) -> [UInt8] {
    guard let stream = try? TCPStream.connect(to: SocketAddress(host: "127.0.0.1", port: port), timeout: timeout) else {
        return []
    }
    return rawExchange(on: stream, request, timeout: timeout)
}

/// Sends `request` on `stream` and reads one Modbus answer.
func rawExchange(on stream: borrowing TCPStream, _ request: [UInt8], timeout: Duration = .seconds(3)) -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    guard (try? stream.write(request, deadline: deadline)) != nil,
          let header = try? stream.read(exactly: 6, deadline: deadline)
    else { return [] }
    let length = Int(header[4]) << 8 | Int(header[5])
    guard let rest = try? stream.read(exactly: length, deadline: deadline) else { return header }
    return header + rest
}

/// An MBAP frame: transaction 0x1234, protocol 0, `unit`, then `pdu`.
func mbap(unit: UInt8 = 1, _ pdu: [UInt8]) -> [UInt8] {
    let length = pdu.count + 1
    return [0x12, 0x34, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), unit] + pdu
}

/// Interprets register pairs as int32, high word first.
func int32s(_ registers: [UInt16]) -> [Int32] {
    stride(from: 0, to: registers.count - 1, by: 2).map { Int32(bitPattern: UInt32(registers[$0]) << 16 | UInt32(registers[$0 + 1])) }
}

/// Interprets register pairs as float32, high word first.
func floats(_ registers: [UInt16]) -> [Float] {
    stride(from: 0, to: registers.count - 1, by: 2).map { Float(bitPattern: UInt32(registers[$0]) << 16 | UInt32(registers[$0 + 1])) }
}

/// A simulated device and a bridge in front of it, on ephemeral loopback ports, running for `body`.
struct BridgeHarness: Sendable {
    let devices: [SimulatedDevice]
    let runtime: BridgeRuntime
    var port: UInt16 { runtime.server.port }
    var device: SimulatedDevice { devices[0] }
    var state: DeviceState { runtime.states[0] }

    static func fastConfiguration(devices: [DeviceConfiguration]) -> BridgeConfiguration {
        BridgeConfiguration(
            // Fast polls, but timeouts and a stale limit that a busy 2-core machine does not trip.
            devices: devices, listen: SocketAddress(host: "127.0.0.1", port: 0), interval: .milliseconds(100),
            staleAfter: .seconds(3), timeouts: Timeouts(connect: .seconds(2), answer: .seconds(2)),
            retry: RetryPolicy(attempts: 2, wait: .zero), minimumGap: .zero, maxBackoff: .milliseconds(200))
    }

    /// Starts `simulators.count` devices (units 1, 2, ...) and a bridge; tears everything down after `body`.
    static func run(
        simulators: [SimulatorConfiguration] = [SimulatorConfiguration(replayCapture: true)],
        waitForSample: Bool = true,
        logger: Logger = quietLogger,
        configure: (inout BridgeConfiguration) -> Void = { _ in },
        _ body: (BridgeHarness) async throws -> Void
    ) async throws {
        var devices: [SimulatedDevice] = []
        defer { devices.forEach { $0.stop() } }
        for var configuration in simulators {
            configuration.listen = SocketAddress(host: "127.0.0.1", port: 0)
            configuration.seed = configuration.seed ?? 42
            configuration.hangLimit = .seconds(5)
            let device = try SimulatedDevice(configuration: configuration, logger: quietLogger)
            device.start()
            devices.append(device)
        }
        var configuration = fastConfiguration(devices: devices.enumerated().map { index, device in
            DeviceConfiguration(address: SocketAddress(host: "127.0.0.1", port: device.port), unit: UInt8(index + 1))
        })
        configure(&configuration)
        let runtime = try BridgeRuntime(configuration: configuration, logger: logger)
        let harness = BridgeHarness(devices: devices, runtime: runtime)
        let group = ServiceGroup(configuration: .init(services: runtime.services.map { .init(service: $0) }, logger: quietLogger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                if waitForSample {
                    try await waitUntil("the first good poll") { runtime.states.allSatisfy { $0.current.goodPolls > 0 } }
                }
                try await body(harness)
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
