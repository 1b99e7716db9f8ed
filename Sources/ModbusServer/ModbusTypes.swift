import Hex
import Sockets
import Locking
import Synchronization

/// A Modbus exception code, as the server answers it.
public enum ModbusException: UInt8, Sendable, Error, CaseIterable, CustomStringConvertible {
    case illegalFunction = 0x01
    case illegalDataAddress = 0x02
    case illegalDataValue = 0x03
    case serverDeviceFailure = 0x04
    /// The server is busy with earlier requests; the client should retry later.
    case serverDeviceBusy = 0x06
    case gatewayPathUnavailable = 0x0A
    case gatewayTargetFailedToRespond = 0x0B

    public var description: String {
        let name = switch self {
        case .illegalFunction: "illegal function"
        case .illegalDataAddress: "illegal data address"
        case .illegalDataValue: "illegal data value"
        case .serverDeviceFailure: "server device failure"
        case .serverDeviceBusy: "server device busy"
        case .gatewayPathUnavailable: "gateway path unavailable"
        case .gatewayTargetFailedToRespond: "gateway target device failed to respond"
        }
        return "\(name) (0x\(hexDigits(rawValue, width: 2)))"
    }
}

/// Function codes the server tells apart.
public enum FunctionCode {
    public static let readHoldingRegisters: UInt8 = 0x03
    public static let readInputRegisters: UInt8 = 0x04
    /// Encapsulated interface transport (MEI); type 14 is Read Device Identification.
    public static let encapsulatedInterface: UInt8 = 0x2B
    /// Every function that changes data: 05, 06, 15, 16, 22, 23.
    public static let writes: Set<UInt8> = [0x05, 0x06, 0x0F, 0x10, 0x16, 0x17]
}

/// A complete, well-framed write request, for a bank to judge.
public struct WriteRequest: Sendable, Equatable {
    public let unit: UInt8
    public let function: UInt8
    /// The PDU after the function code.
    public let data: [UInt8]
    /// Who sent it.
    public let client: SocketAddress

    public init(unit: UInt8, function: UInt8, data: [UInt8], client: SocketAddress) {
        self.unit = unit
        self.function = function
        self.data = data
        self.client = client
    }
}

/// How a write that a bank accepted for processing ended.
public enum WriteOutcome: Sendable, Equatable {
    /// Done: the server sends the normal write response.
    case success
    /// Failed: the server answers with this exception.
    case exception(ModbusException)
}

/// Delivers the outcome of a write that finishes later; call it exactly once, from any thread.
public struct WriteCompletion: Sendable {
    let token: UInt64
    let queue: CompletionQueue?
    let requester: Requester

    init(token: UInt64, queue: CompletionQueue?, requester: Requester = Requester()) {
        self.token = token
        self.queue = queue
        self.requester = requester
    }

    public func callAsFunction(_ outcome: WriteOutcome) {
        queue?.post(token: token, outcome: outcome)
    }

    /// Whether nobody waits for the outcome any more: the client closed its connection, or the
    /// server answered it with 0x0B when `ServerConfiguration.writeTimeout` passed. A bank that
    /// has not started the write yet should drop it.
    public var isAbandoned: Bool { requester.isGone }

    /// A completion that goes nowhere, for judging requests without a server (tests, fuzzing).
    public static let discarded = WriteCompletion(token: 0, queue: nil)

    /// Whether the requester of a deferred write still waits; the network thread sets it.
    final class Requester: Sendable {
        private let gone = Atomic<Bool>(false)
        var isGone: Bool { gone.load(ordering: .acquiring) }
        func leave() { gone.store(true, ordering: .releasing) }
    }
}

/// Outcomes of deferred writes on their way back to the network thread.
final class CompletionQueue: Sendable {
    private let items = Locked<[(UInt64, WriteOutcome)]>([])
    private let wake: WakeSignal

    init(wake: WakeSignal) { self.wake = wake }

    func post(token: UInt64, outcome: WriteOutcome) {
        items.withLock { $0.append((token, outcome)) }
        wake.signal()
    }

    func drain() -> [(UInt64, WriteOutcome)] {
        items.withLock { items in
            defer { items.removeAll() }
            return items
        }
    }
}

/// What the server serves: the register map behind each unit id.
///
/// The server frames requests, checks the counts and ranges that hold for every map, and asks
/// the bank for the rest. Calls come from the server's single network thread, so they must be
/// quick and must not block: a bank publishes its data and reads it under a short lock.
public protocol RegisterBank: Sendable {
    /// Whether `unit` reaches a configured device. Unknown units get 0x0A.
    func serves(unit: UInt8) -> Bool

    /// Fills `registers` with `registers.count` values from `address` on for `unit`, or says why not.
    ///
    /// Called only for a served unit and a count of 1 to 125 inside the address space; function 03
    /// and 04 read the same map.
    func read(unit: UInt8, address: UInt16, into registers: UnsafeMutableBufferPointer<UInt16>) -> ModbusException?

    /// Judges a write: an exception refuses it at once; `nil` means the bank has started it and
    /// will call `completion` exactly once. Meanwhile the server serves every other client, and
    /// holds this client's further requests back so its answers stay in order.
    /// The default refuses every write with 0x01, changing nothing.
    func write(_ request: WriteRequest, completion: WriteCompletion) -> ModbusException?
}

extension RegisterBank {
    public func write(_ request: WriteRequest, completion: WriteCompletion) -> ModbusException? { .illegalFunction }
}

/// What the server does with one complete request frame (an MBAP header and its PDU).
public enum RequestDecision: Equatable, Sendable {
    /// Serve `count` registers from `address` (the bank has filled them).
    case read(function: UInt8, address: UInt16, count: UInt16)
    /// A write to a served unit, for the bank to judge.
    case write(WriteRequest)
    case exception(ModbusException)
    /// Send this response PDU; the server adds the MBAP header (the request's transaction and unit id).
    case reply(pdu: [UInt8])
}

/// Decides how to answer one complete request, before anything reaches `modbus_reply`.
///
/// This is the only place where the contract's answer table is enforced for every read:
/// unit routing, function, count, address space, then the bank's own checks (blocks, staleness).
/// Writes to a served unit go to the bank's `write`.
/// `registers` receives the values of a read and must hold at least 125 entries. Without an
/// `identification`, function 43 is refused like any other unsupported function.
public func decide(
    frame: UnsafeRawBufferPointer, bank: some RegisterBank, client: SocketAddress,
    registers: UnsafeMutableBufferPointer<UInt16>, identification: DeviceIdentification? = nil
) -> RequestDecision {
    precondition(frame.count >= 8, "a complete frame has a header and a function code")
    let unit = frame[6]
    let function = frame[7]
    guard bank.serves(unit: unit) else { return .exception(.gatewayPathUnavailable) }
    switch function {
    case FunctionCode.readHoldingRegisters, FunctionCode.readInputRegisters:
        guard frame.count == 12 else { return .exception(.illegalDataValue) }
        let address = UInt16(frame[8]) << 8 | UInt16(frame[9])
        let count = UInt16(frame[10]) << 8 | UInt16(frame[11])
        guard count >= 1, count <= 125 else { return .exception(.illegalDataValue) }
        guard Int(address) + Int(count) <= 65536 else { return .exception(.illegalDataAddress) }
        let slice = UnsafeMutableBufferPointer(rebasing: registers[0..<Int(count)])
        if let exception = bank.read(unit: unit, address: address, into: slice) { return .exception(exception) }
        return .read(function: function, address: address, count: count)
    case let code where FunctionCode.writes.contains(code):
        return .write(WriteRequest(unit: unit, function: code, data: Array(frame[8...]), client: client))
    case FunctionCode.encapsulatedInterface:
        guard let identification else { return .exception(.illegalFunction) }
        switch identification.response(to: frame[7...]) {
        case .success(let pdu): return .reply(pdu: pdu)
        case .failure(let exception): return .exception(exception)
        }
    default:
        return .exception(.illegalFunction)
    }
}

/// Checks an MBAP header (the first 7 bytes of a Modbus TCP frame).
public enum MBAPHeader {
    public static let size = 7

    /// The whole frame's size, or `nil` when the header is not Modbus TCP (a protocol id other than 0,
    /// or a length that cannot hold a unit id and a PDU of at most 253 bytes).
    public static func frameSize(_ header: UnsafeRawBufferPointer) -> Int? {
        guard header.count >= size, header[2] == 0, header[3] == 0 else { return nil }
        let length = Int(header[4]) << 8 | Int(header[5])
        guard length >= 2, length <= 254 else { return nil }
        return 6 + length
    }
}
