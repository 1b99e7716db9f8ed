@testable import Bridge
import ModbusServer
import Sockets
import SEC1000Protocol

/// The bank the server would serve: unit 1 fresh (also reached as 0 and 255), unit 2 without a
/// sample yet, unit 3 with a sample past its stale limit. Built once; the fuzzer only reads it.
let fresh = DeviceState(unit: 1, interval: .seconds(10), staleAfter: .seconds(3600))
let empty = DeviceState(unit: 2, interval: .seconds(10), staleAfter: .seconds(30))
let stale = DeviceState(unit: 3, interval: .seconds(10), staleAfter: .seconds(30))
/// The real capture of the protocol notes.
let capturedMeasurements = Measurements(
    voltages: [2410, 2404, 2409], currents: [480, 390, 508], powers: [295, -114, -532], meterPower: -351, invertersPower: 3386)
let bank: BridgeRegisterBank = {
    func sample(taken: ContinuousClock.Instant) -> Sample {
        let reading = Reading(
            capturedMeasurements, gridSign: .importPositive, filteredInvertersPower: capturedMeasurements.invertersPower,
            substituted: false, taken: taken, unixTime: 1_700_000_000)
        return Sample(reading: reading, energy: .zero, sunSpecBase: fresh.sunSpecStatic)
    }
    fresh.publish(sample(taken: .now))
    stale.publish(sample(taken: .now - .seconds(60)))
    return BridgeRegisterBank(devices: [fresh, empty, stale])
}()
let blockAB = fresh.current.sample!.registers

/// libFuzzer's entry point: the input is a byte stream from one client.
///
/// It is framed as the server frames it (`MBAPHeader.frameSize`, stop at a header that is not
/// Modbus TCP), and every complete frame goes through `decide` with the real `BridgeRegisterBank`.
/// Nothing may trap, and every decision is the contract's: a `.read` has function 03 or 04, a count
/// of 1 to 125 and lies inside one block, with the block's values filled in; every exception has the
/// code the contract gives that request.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let stream = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    var start = 0
    var registers = [UInt16](repeating: 0xDEAD, count: 125)
    while stream.count - start >= MBAPHeader.size {
        let rest = Array(stream[start...])
        guard let frameSize = rest.withUnsafeBytes({ MBAPHeader.frameSize($0) }) else {
            let length = Int(rest[4]) << 8 | Int(rest[5])
            require(rest[2] != 0 || rest[3] != 0 || !(2...254).contains(length), "a good header refused: \(Array(rest.prefix(7)))")
            return 0
        }
        let length = Int(rest[4]) << 8 | Int(rest[5])
        require(rest[2] == 0 && rest[3] == 0 && frameSize == 6 + length && (2...254).contains(length), "a bad header taken")
        guard rest.count >= frameSize else { return 0 }
        let frame = Array(rest[..<frameSize])
        let decision = frame.withUnsafeBytes { bytes in
            registers.withUnsafeMutableBufferPointer { decide(frame: bytes, bank: bank, client: fuzzClient, registers: $0) }
        }
        check(decision, for: frame, registers: registers)
        start += frameSize
    }
    return 0
}

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(message())") }
}

let fuzzClient = SocketAddress(host: "127.0.0.1", port: 1)

/// Blocks A, B, C, D (control), E (energy) and the SunSpec image.
let blocks: [Range<Int>] = [0..<28, 100..<128, 200..<210, 300..<312, 400..<412, 40000..<40231]

/// Function codes that write: a served unit's write goes to the bank whole.
let writeFunctions: Set<UInt8> = [0x05, 0x06, 0x0F, 0x10, 0x16, 0x17]

/// The contract's answer, written from the register-map page.
func expected(for frame: [UInt8]) -> RequestDecision {
    let unit = frame[6]
    let function = frame[7]
    let device: UInt8? = unit == 0 || unit == 255 ? 1 : (1...3).contains(unit) ? unit : nil
    guard let device else { return .exception(.gatewayPathUnavailable) }
    if writeFunctions.contains(function) {
        return .write(WriteRequest(unit: unit, function: function, data: Array(frame[8...]), client: fuzzClient))
    }
    guard function == 0x03 || function == 0x04 else { return .exception(.illegalFunction) }
    guard frame.count == 12 else { return .exception(.illegalDataValue) }
    let address = Int(frame[8]) << 8 | Int(frame[9])
    let count = Int(frame[10]) << 8 | Int(frame[11])
    guard (1...125).contains(count) else { return .exception(.illegalDataValue) }
    guard let block = blocks.first(where: { $0.contains(address) && address + count <= $0.upperBound }) else {
        return .exception(.illegalDataAddress)
    }
    // Blocks C and D and the static parts of the SunSpec image are always served; the rest needs fresh data.
    let alwaysServed = block == 200..<210 || block == 300..<312
        || (block == 40000..<40231 && RegisterMap.isStaticSunSpecRead(address: UInt16(address), count: count))
    if !alwaysServed && device != 1 { return .exception(.gatewayTargetFailedToRespond) }
    return .read(function: function, address: UInt16(address), count: UInt16(count))
}

func check(_ decision: RequestDecision, for frame: [UInt8], registers: [UInt16]) {
    let contract = expected(for: frame)
    require(decision == contract, "\(frame): decided \(decision), the contract says \(contract)")
    guard case .read(let function, let address, let count) = decision else { return }
    require(function == 0x03 || function == 0x04, "a read with function \(function)")
    require((1...125).contains(count), "a read of \(count) registers")
    let range = Int(address)..<(Int(address) + Int(count))
    require(blocks.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound }, "a read across blocks: \(range)")
    let values = Array(registers[..<Int(count)])
    switch range.lowerBound {
    case 0..<28:
        require(values == Array(blockAB[range]), "block A values")
    case 100..<128:
        require(values == Array(blockAB[(range.lowerBound - 72)..<(range.upperBound - 72)]), "block B values")
    case 200..<210:
        // Block C: unit 1 fresh, unit 2 without a sample, unit 3 stale; never a substitution; a 10 s
        // interval. Counters and ages move.
        let unit = frame[6] == 0 || frame[6] == 255 ? 1 : frame[6]
        let flags: UInt16 = unit == 1 ? 0b0001 : unit == 2 ? 0b1000 : 0b0000
        if range.contains(200) { require(values[200 - range.lowerBound] & 0b1101 == flags, "unit \(unit) status flags \(values)") }
        if range.contains(209) { require(values[209 - range.lowerBound] == 10, "poll interval \(values)") }
    default:
        // Blocks D, E and the SunSpec image have tests of their own values.
        break
    }
}
