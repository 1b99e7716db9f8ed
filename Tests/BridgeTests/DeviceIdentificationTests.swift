import ModbusServer
import Sockets
import Testing

/// Read Device Identification (function 43 / MEI type 14) as the Modbus application protocol
/// specification v1.1b3, section 6.21, lays it out.
@Suite("Device identification")
struct DeviceIdentificationTests {
    let identification = DeviceIdentification(
        vendorName: "ACME", productCode: "P1", majorMinorRevision: "1.2", vendorURL: "https://x",
        productName: "Widget", modelName: "W-1")

    func answer(_ pdu: [UInt8]) -> Result<[UInt8], ModbusException> { identification.response(to: pdu) }

    static let basic: [UInt8] = [0x00, 4] + Array("ACME".utf8) + [0x01, 2] + Array("P1".utf8) + [0x02, 3] + Array("1.2".utf8)
    static let regular: [UInt8] = [0x03, 9] + Array("https://x".utf8) + [0x04, 6] + Array("Widget".utf8) + [0x05, 3] + Array("W-1".utf8)

    @Test func basicStream() {
        // Function, MEI type, read code, conformity (regular, individual access too), more follows,
        // next object id, number of objects.
        #expect(answer([0x2B, 0x0E, 0x01, 0x00]) == .success([0x2B, 0x0E, 0x01, 0x82, 0x00, 0x00, 3] + Self.basic))
    }

    @Test func regularStreamHoldsBasicAndRegularObjects() {
        #expect(answer([0x2B, 0x0E, 0x02, 0x00]) == .success([0x2B, 0x0E, 0x02, 0x82, 0x00, 0x00, 6] + Self.basic + Self.regular))
    }

    @Test func extendedStreamIsAnsweredAsRegular() {
        #expect(answer([0x2B, 0x0E, 0x03, 0x00]) == .success([0x2B, 0x0E, 0x03, 0x82, 0x00, 0x00, 6] + Self.basic + Self.regular))
    }

    @Test func aStreamStartsAtTheRequestedObject() {
        #expect(answer([0x2B, 0x0E, 0x02, 0x04]) == .success([0x2B, 0x0E, 0x02, 0x82, 0x00, 0x00, 2] + Array(Self.regular[11...])))
    }

    /// "If the Object Id does not match any known object, the server responds as if object 0 were pointed out."
    @Test(arguments: [UInt8(0x04), 0x07, 0x80, 0xFF])
    func aStreamFromAnUnknownObjectRestartsAtZero(object: UInt8) {
        #expect(answer([0x2B, 0x0E, 0x01, object]) == .success([0x2B, 0x0E, 0x01, 0x82, 0x00, 0x00, 3] + Self.basic))
    }

    @Test func individualAccess() {
        #expect(answer([0x2B, 0x0E, 0x04, 0x05]) == .success([0x2B, 0x0E, 0x04, 0x82, 0x00, 0x00, 1, 0x05, 3] + Array("W-1".utf8)))
        #expect(answer([0x2B, 0x0E, 0x04, 0x00]) == .success([0x2B, 0x0E, 0x04, 0x82, 0x00, 0x00, 1, 0x00, 4] + Array("ACME".utf8)))
    }

    @Test(arguments: [UInt8(0x06), 0x07, 0x7F, 0x80, 0xFF])
    func individualAccessToAnUnknownObjectIsAnIllegalAddress(object: UInt8) {
        #expect(answer([0x2B, 0x0E, 0x04, object]) == .failure(.illegalDataAddress))
    }

    @Test(arguments: [UInt8(0x00), 0x05, 0x80, 0xFF])
    func aBadReadCodeIsAnIllegalValue(code: UInt8) {
        #expect(answer([0x2B, 0x0E, code, 0x00]) == .failure(.illegalDataValue))
    }

    @Test(arguments: [[UInt8(0x2B), 0x0E, 0x01], [0x2B, 0x0E, 0x01, 0x00, 0x00], [0x2B, 0x0E]])
    func aRequestOfTheWrongLengthIsAnIllegalValue(pdu: [UInt8]) {
        #expect(answer(pdu) == .failure(.illegalDataValue))
    }

    @Test func withoutRegularObjectsTheConformityIsBasic() {
        let basicOnly = DeviceIdentification(vendorName: "ACME", productCode: "P1", majorMinorRevision: "1.2")
        #expect(basicOnly.response(to: [0x2B, 0x0E, 0x02, 0x00]) == .success([0x2B, 0x0E, 0x02, 0x81, 0x00, 0x00, 3] + Self.basic))
    }

    /// Objects that do not fit one response (253 bytes) are sent in several, "more follows" and
    /// "next object id" telling the client where to go on.
    @Test func longObjectsFollowInAnotherResponse() throws {
        let long = DeviceIdentification(
            vendorName: "ACME", productCode: "P1", majorMinorRevision: "1.2",
            vendorURL: String(repeating: "u", count: 100), productName: String(repeating: "p", count: 200), modelName: "W-1")
        let first = try long.response(to: [0x2B, 0x0E, 0x02, 0x00]).get()
        // 7 header bytes + 15 basic + 102 for the URL; the product name (202 more) would pass 253.
        #expect(Array(first[0..<7]) == [0x2B, 0x0E, 0x02, 0x82, 0xFF, 0x04, 4])
        #expect(first.count == 7 + 15 + 102)
        let second = try long.response(to: [0x2B, 0x0E, 0x02, first[5]]).get()
        #expect(Array(second[0..<7]) == [0x2B, 0x0E, 0x02, 0x82, 0x00, 0x00, 2])
        #expect(Array(second[7..<9]) == [0x04, 200])
        #expect(Array(second.suffix(5)) == [0x05, 3] + Array("W-1".utf8))
        #expect(second.count <= 253)
    }

    @Test func valuesAreCutToFitOneResponse() throws {
        let huge = DeviceIdentification(vendorName: String(repeating: "v", count: 300), productCode: "P", majorMinorRevision: "1")
        let answer = try huge.response(to: [0x2B, 0x0E, 0x04, 0x00]).get()
        #expect(answer.count == 253)
        #expect(answer[8] == 244)
    }

    struct OneUnit: RegisterBank {
        func serves(unit: UInt8) -> Bool { unit == 1 }
        func read(unit: UInt8, address: UInt16, into registers: UnsafeMutableBufferPointer<UInt16>) -> ModbusException? {
            .illegalDataAddress
        }
    }

    func decision(_ frame: [UInt8], identification: DeviceIdentification?) -> RequestDecision {
        var registers = [UInt16](repeating: 0, count: 125)
        return frame.withUnsafeBytes { bytes in
            registers.withUnsafeMutableBufferPointer {
                decide(frame: bytes, bank: OneUnit(), client: SocketAddress(host: "127.0.0.1", port: 1), registers: $0, identification: identification)
            }
        }
    }

    @Test func decideRepliesRoutesAndRefuses() throws {
        let basic = try identification.response(to: [0x2B, 0x0E, 0x01, 0x00]).get()
        #expect(decision(mbap([0x2B, 0x0E, 0x01, 0x00]), identification: identification) == .reply(pdu: basic))
        #expect(decision(mbap(unit: 9, [0x2B, 0x0E, 0x01, 0x00]), identification: identification) == .exception(.gatewayPathUnavailable))
        #expect(decision(mbap([0x2B, 0x0D, 0x01, 0x00]), identification: identification) == .exception(.illegalFunction))
        #expect(decision(mbap([0x2B]), identification: identification) == .exception(.illegalFunction))
        #expect(decision(mbap([0x2B, 0x0E, 0x01, 0x00]), identification: nil) == .exception(.illegalFunction))
        #expect(decision(mbap([0x2B, 0x0E, 0x09, 0x00]), identification: identification) == .exception(.illegalDataValue))
        #expect(decision(mbap([0x2B, 0x0E, 0x04, 0x42]), identification: identification) == .exception(.illegalDataAddress))
    }
}
