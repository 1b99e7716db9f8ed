import Bridge
import ModbusServer
import Sockets
import Testing

/// `decide` judged without sockets, against a bank with one fixed block.
@Suite("Request decisions")
struct RequestDecisionTests {
    struct FixedBank: RegisterBank {
        func serves(unit: UInt8) -> Bool { unit == 1 }
        func read(unit: UInt8, address: UInt16, into registers: UnsafeMutableBufferPointer<UInt16>) -> ModbusException? {
            guard address >= 10, Int(address) + registers.count <= 20 else { return .illegalDataAddress }
            for index in registers.indices { registers[index] = address + UInt16(index) }
            return nil
        }
    }

    func decision(_ frame: [UInt8]) -> (RequestDecision, [UInt16]) {
        var registers = [UInt16](repeating: 0, count: 125)
        let result = frame.withUnsafeBytes { bytes in
            registers.withUnsafeMutableBufferPointer { decide(frame: bytes, bank: FixedBank(), client: SocketAddress(host: "127.0.0.1", port: 1), registers: $0) }
        }
        return (result, registers)
    }

    @Test func aGoodReadIsFilled() {
        let (result, registers) = decision(mbap([0x04, 0, 12, 0, 3]))
        #expect(result == .read(function: 0x04, address: 12, count: 3))
        #expect(Array(registers.prefix(3)) == [12, 13, 14])
    }

    @Test(arguments: [
        (mbap(unit: 2, [0x03, 0, 12, 0, 1]), ModbusException.gatewayPathUnavailable),
        (mbap(unit: 2, [0x01, 0, 0, 0, 1]), .gatewayPathUnavailable),
        (mbap([0x03, 0, 12, 0, 1, 0]), .illegalDataValue),      // PDU too long for its function
        (mbap([0x03, 0, 12, 0]), .illegalDataValue),            // PDU too short
        (mbap([0x03, 0, 12, 0, 0]), .illegalDataValue),
        (mbap([0x03, 0, 12, 0, 126]), .illegalDataValue),
        (mbap([0x03, 0xFF, 0xFF, 0, 2]), .illegalDataAddress),  // past 65535
        (mbap([0x03, 0, 18, 0, 3]), .illegalDataAddress),       // the bank's own limit
        (mbap([0x2B, 0x0E, 1, 0]), .illegalFunction),
        (mbap([0x80]), .illegalFunction),
    ])
    func badRequestsGetTheirException(frame: [UInt8], expected: ModbusException) {
        #expect(decision(frame).0 == .exception(expected))
    }

    @Test(arguments: [[UInt8(0x05), 0, 1, 0xFF, 0], [0x06, 0, 12, 0, 3], [0x0F, 0, 0, 0, 1, 1, 1], [0x10, 0, 12, 0, 1, 2, 0, 0], [0x16, 0, 0, 0, 0, 0, 0], [0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 0]])
    func writesGoToTheBankWhole(pdu: [UInt8]) {
        let client = SocketAddress(host: "127.0.0.1", port: 1)
        #expect(decision(mbap(pdu)).0 == .write(WriteRequest(unit: 1, function: pdu[0], data: Array(pdu.dropFirst()), client: client)))
    }

    @Test func theDefaultBankRefusesEveryWrite() {
        let request = WriteRequest(unit: 1, function: 0x06, data: [0, 0, 0, 1], client: SocketAddress(host: "127.0.0.1", port: 1))
        #expect(FixedBank().write(request, completion: .discarded) == .illegalFunction)
    }

    @Test(arguments: [
        ([0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01], 12),
        ([0x00, 0x01, 0x00, 0x00, 0x00, 0xFE, 0x01], 260),
        ([0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x01], nil),
        ([0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01], nil),
        ([0x00, 0x01, 0x00, 0x00, 0x00, 0xFF, 0x01], nil),
        ([0x00, 0x01, 0x00, 0x00, 0x00, 0x06], nil),
    ] as [([UInt8], Int?)])
    func headersAreChecked(header: [UInt8], size: Int?) {
        #expect(header.withUnsafeBytes { MBAPHeader.frameSize($0) } == size)
    }
}
