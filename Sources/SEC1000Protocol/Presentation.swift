import Hex
/// Renders integers in fixed-point units as exact decimals: `481` at 2 digits is `4.81`,
/// never `4.8100000000000005`. At least one fractional digit is kept, as Python prints floats.
public func decimalString(_ value: Int64, fractionDigits: Int) -> String {
    guard fractionDigits > 0 else { return "\(value).0" }
    var divisor: Int64 = 1
    for _ in 0..<fractionDigits { divisor *= 10 }
    let magnitude = value.magnitude
    let whole = magnitude / UInt64(divisor)
    var fraction = String(magnitude % UInt64(divisor))
    fraction = String(repeating: "0", count: fractionDigits - fraction.count) + fraction
    while fraction.count > 1 && fraction.hasSuffix("0") { fraction.removeLast() }
    return (value < 0 ? "-" : "") + "\(whole).\(fraction)"
}

/// One field of the measurements payload, as the original tool names and scales it.
public struct MeasurementField: Sendable {
    /// The original tool's JSON key.
    public let key: String
    /// What the field is.
    public let name: String
    /// Decimal digits between the raw integer and the original tool's unit (V, A, kW).
    public let fractionDigits: Int
    /// The original tool's unit.
    public let unit: String

    /// The fields in payload order.
    public static let all: [MeasurementField] = [
        .init(key: "v1", name: "voltage L1", fractionDigits: 1, unit: "V"),
        .init(key: "v2", name: "voltage L2", fractionDigits: 1, unit: "V"),
        .init(key: "v3", name: "voltage L3", fractionDigits: 1, unit: "V"),
        .init(key: "i1", name: "current L1", fractionDigits: 2, unit: "A"),
        .init(key: "i2", name: "current L2", fractionDigits: 2, unit: "A"),
        .init(key: "i3", name: "current L3", fractionDigits: 2, unit: "A"),
        .init(key: "p1", name: "power L1", fractionDigits: 3, unit: "kW"),
        .init(key: "p2", name: "power L2", fractionDigits: 3, unit: "kW"),
        .init(key: "p3", name: "power L3", fractionDigits: 3, unit: "kW"),
        .init(key: "meters_power", name: "meter (grid) power", fractionDigits: 3, unit: "kW"),
        .init(key: "inverters_power", name: "inverters power", fractionDigits: 3, unit: "kW"),
    ]
}

extension Measurements {
    /// The original tool's JSON: keys `v1` … `inverters_power` in V, A and kW, in payload order.
    public var json: String {
        let pairs = zip(MeasurementField.all, rawValues).map { field, raw in
            "\"\(field.key)\": \(decimalString(Int64(raw), fractionDigits: field.fractionDigits))"
        }
        return "{" + pairs.joined(separator: ", ") + "}"
    }

    /// One `key value unit` line per field.
    public var text: String {
        zip(MeasurementField.all, rawValues).map { field, raw in
            let padded = field.key + String(repeating: " ", count: max(0, 16 - field.key.count))
            return "\(padded)\(decimalString(Int64(raw), fractionDigits: field.fractionDigits)) \(field.unit)"
        }.joined(separator: "\n")
    }
}

/// A field-by-field account of one raw answer, for `sec1000 analyze`.
public struct AnswerAnalysis: Sendable {
    public struct Row: Sendable {
        public let offset: Int
        public let bytes: [UInt8]
        public let field: String
        /// The raw integer, for numeric fields.
        public let raw: Int64?
        /// The value in engineering units, for measurement fields.
        public let scaled: String?
    }

    public let rows: [Row]
    /// The checksum carried by the frame, when the frame is long enough to carry one.
    public let receivedChecksum: UInt16?
    /// The sum of the frame's body, when its length byte says where the body ends.
    public let computedChecksum: UInt16?
    /// What decoding concluded: the answer, or exactly what is wrong with it.
    public let result: Result<Response, ProtocolError>
    /// For a valid measurements frame whose values break a plausibility rule: which, and how.
    public let implausibility: ImplausibleReading?

    /// Analyzes `bytes` as the answer to `command`; never traps, whatever the bytes are.
    public init(bytes: [UInt8], command: Command) {
        var rows: [Row] = []
        func add(_ offset: Int, _ count: Int, _ field: String, raw: Int64? = nil, scaled: String? = nil) {
            guard offset < bytes.count else { return }
            let slice = Array(bytes[offset..<min(bytes.count, offset + count)])
            let complete = slice.count == count
            rows.append(Row(offset: offset, bytes: slice, field: complete ? field : field + " (truncated)",
                            raw: complete ? raw : nil, scaled: complete ? scaled : nil))
        }
        func byte(_ offset: Int) -> Int64? { offset < bytes.count ? Int64(bytes[offset]) : nil }
        func int32(_ offset: Int) -> Int64? {
            offset + 4 <= bytes.count ? Int64(Int32.bigEndian(bytes, at: offset)) : nil
        }

        add(0, 5, "prefix (04 'REVO')")
        add(5, 1, "zero", raw: byte(5))
        add(6, 1, "length", raw: byte(6))
        add(7, 2, "marker (01 01)")
        add(9, 1, "command", raw: byte(9))
        let frameEnd = bytes.count > 6 ? min(bytes.count, Frame.responseSize(lengthByte: bytes[6])) : bytes.count
        let payloadEnd = max(Frame.responsePayloadOffset, frameEnd - 2)
        let echoed = bytes.count > 9 ? Command(rawValue: bytes[9]) : nil
        let isShort = bytes.count > 6 && bytes[6] == 0x06
        switch (isShort ? nil : echoed) ?? (isShort ? nil : command) {
        case .readMeasurements:
            for (index, field) in MeasurementField.all.enumerated() {
                let offset = Frame.responsePayloadOffset + 4 * index
                guard offset < payloadEnd else { break }
                let raw = int32(offset)
                add(offset, min(4, payloadEnd - offset), "\(field.key) (\(field.name))", raw: raw,
                    scaled: raw.map { decimalString($0, fractionDigits: field.fractionDigits) + " " + field.unit })
            }
        case .readExportSettings:
            let offset = Frame.responsePayloadOffset
            let mode = byte(offset).flatMap { ControlMode(rawValue: UInt8($0)) }.map { "\($0)" }
            add(offset, 1, "control mode", raw: byte(offset), scaled: mode)
            add(offset + 1, 4, "total PV capacity (W)", raw: int32(offset + 1))
            add(offset + 5, 4, "CT ratio", raw: int32(offset + 5))
            add(offset + 9, 4, "export limit (W)", raw: int32(offset + 9))
        default:
            if payloadEnd > Frame.responsePayloadOffset {
                add(Frame.responsePayloadOffset, payloadEnd - Frame.responsePayloadOffset, "status / payload",
                    raw: payloadEnd - Frame.responsePayloadOffset == 1 ? byte(Frame.responsePayloadOffset) : nil)
            }
        }
        var received: UInt16?
        var computed: UInt16?
        if bytes.count > 6 && frameEnd >= Frame.responsePayloadOffset && frameEnd == Frame.responseSize(lengthByte: bytes[6]) {
            received = UInt16(bytes[frameEnd - 2]) << 8 | UInt16(bytes[frameEnd - 1])
            computed = Frame.checksum(bytes[7..<(frameEnd - 2)])
            add(frameEnd - 2, 2, "checksum", raw: received.map(Int64.init))
        }
        if frameEnd < bytes.count {
            add(frameEnd, bytes.count - frameEnd, "extra bytes after the frame")
        }
        self.rows = rows
        self.receivedChecksum = received
        self.computedChecksum = computed
        do {
            self.result = .success(try ResponseDecoder.decode(bytes, for: command))
        } catch {
            self.result = .failure(error)
        }
        if case .success(.measurements(let m)) = result { implausibility = m.implausibility() } else { implausibility = nil }
    }

    /// A plain-text table of the analysis, ending with the verdict.
    public var text: String {
        var lines = ["offset  bytes        field                                     raw  value"]
        for row in rows {
            let hexBytes = row.bytes.count <= 4 ? row.bytes.hexDescription : Array(row.bytes.prefix(4)).hexDescription + " …"
            lines.append(
                pad(String(row.offset), 8) + pad(hexBytes, 13) + pad(row.field, 36)
                    + leftPad(row.raw.map(String.init) ?? "", 10) + "  " + (row.scaled ?? ""))
        }
        if let receivedChecksum, let computedChecksum {
            let verdict = receivedChecksum == computedChecksum ? "match" : "MISMATCH"
            lines.append("checksum: received 0x\(hexDigits(receivedChecksum, width: 4)), computed 0x\(hexDigits(computedChecksum, width: 4)): \(verdict)")
        } else {
            lines.append("checksum: not present (the frame is incomplete)")
        }
        switch result {
        case .success where implausibility != nil:
            lines.append("verdict: bad answer: a valid frame, but an implausible reading: \(implausibility!)")
        case .success: lines.append("verdict: a valid answer")
        case .failure(let error): lines.append("verdict: bad answer: \(error)")
        }
        return lines.joined(separator: "\n")
    }
}

private func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(1, width - s.count)) }
private func leftPad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

extension ControlMode {
    /// The name used on the command line and in JSON.
    public var name: String {
        switch self {
        case .off: "off"
        case .dred: "dred"
        case .rcr: "rcr"
        case .byValue: "value"
        }
    }
}

extension ExportSettings {
    /// The settings as JSON: mode name and code, capacity, CT ratio and limit.
    public var json: String {
        let name = mode.map { "\"\($0.name)\"" } ?? "null"
        return "{\"control_mode\": \(name), \"control_mode_code\": \(modeByte), \"total_capacity_w\": \(totalCapacity), "
            + "\"ct_ratio\": \(ctRatio), \"export_limit_w\": \(exportLimit)}"
    }

    /// One `name value` line per setting.
    public var text: String {
        """
        control mode    \(mode?.name ?? "unknown") (\(modeByte))
        total capacity  \(totalCapacity) W
        CT ratio        \(ctRatio)
        export limit    \(exportLimit) W
        """
    }
}
