/// A SunSpec point type, with the register pattern that means "not implemented".
public enum PointType: String, Sendable, CaseIterable {
    case int16, uint16, acc32, sunssf, string, enum16, bitfield32, pad

    /// The "not implemented" registers of a point of this type and `size` registers.
    public func notImplemented(size: Int) -> [UInt16] {
        switch self {
        case .int16, .sunssf: [0x8000]
        case .uint16, .enum16: [0xFFFF]
        case .acc32: [0, 0]
        case .bitfield32: [0xFFFF, 0xFFFF]
        // SunSpec's pad value; clients ignore it.
        case .pad: [0x8000]
        case .string: Array(repeating: 0, count: size)
        }
    }
}

/// One point of a model: its name as in the SunSpec definition, its type and size in registers.
public struct Point: Sendable, Equatable {
    public let name: String
    public let type: PointType
    public let size: Int
    /// Registers from the model's first register (its ID).
    public let offset: Int
}

/// A fixed-length SunSpec model: ID, length, then the points.
///
/// The layouts below restate the SunSpec definitions for the points this bridge writes; the tests
/// hold them to the definition files that SunSpec publishes.
public struct ModelLayout: Sendable {
    public let id: UInt16
    /// Every point, ID and L included, in register order.
    public let points: [Point]

    init(id: UInt16, _ fields: [(String, PointType, Int)]) {
        self.id = id
        var offset = 0
        var points: [Point] = []
        for (name, type, size) in [("ID", PointType.uint16, 1), ("L", .uint16, 1)] + fields {
            points.append(Point(name: name, type: type, size: size, offset: offset))
            offset += size
        }
        self.points = points
    }

    /// The L register: registers after ID and L.
    public var length: UInt16 { UInt16(size - 2) }
    /// Registers including ID and L.
    public var size: Int { points.last.map { $0.offset + $0.size } ?? 0 }

    public func point(_ name: String) -> Point? { points.first { $0.name == name } }

    /// The model with ID and L set and every other point "not implemented".
    public var notImplemented: [UInt16] {
        var registers = points.flatMap { $0.type.notImplemented(size: $0.size) }
        registers[0] = id
        registers[1] = length
        return registers
    }
}

extension ModelLayout {
    /// Model 1, Common.
    public static let common = ModelLayout(id: 1, [
        ("Mn", .string, 16), ("Md", .string, 16), ("Opt", .string, 8), ("Vr", .string, 8), ("SN", .string, 16),
        ("DA", .uint16, 1), ("Pad", .pad, 1),
    ])

    /// Model 103, three-phase inverter (integer and scale factor).
    public static let inverterThreePhase = ModelLayout(id: 103, [
        ("A", .uint16, 1), ("AphA", .uint16, 1), ("AphB", .uint16, 1), ("AphC", .uint16, 1), ("A_SF", .sunssf, 1),
        ("PPVphAB", .uint16, 1), ("PPVphBC", .uint16, 1), ("PPVphCA", .uint16, 1),
        ("PhVphA", .uint16, 1), ("PhVphB", .uint16, 1), ("PhVphC", .uint16, 1), ("V_SF", .sunssf, 1),
        ("W", .int16, 1), ("W_SF", .sunssf, 1), ("Hz", .uint16, 1), ("Hz_SF", .sunssf, 1),
        ("VA", .int16, 1), ("VA_SF", .sunssf, 1), ("VAr", .int16, 1), ("VAr_SF", .sunssf, 1),
        ("PF", .int16, 1), ("PF_SF", .sunssf, 1), ("WH", .acc32, 2), ("WH_SF", .sunssf, 1),
        ("DCA", .uint16, 1), ("DCA_SF", .sunssf, 1), ("DCV", .uint16, 1), ("DCV_SF", .sunssf, 1),
        ("DCW", .int16, 1), ("DCW_SF", .sunssf, 1),
        ("TmpCab", .int16, 1), ("TmpSnk", .int16, 1), ("TmpTrns", .int16, 1), ("TmpOt", .int16, 1), ("Tmp_SF", .sunssf, 1),
        ("St", .enum16, 1), ("StVnd", .enum16, 1), ("Evt1", .bitfield32, 2), ("Evt2", .bitfield32, 2),
        ("EvtVnd1", .bitfield32, 2), ("EvtVnd2", .bitfield32, 2), ("EvtVnd3", .bitfield32, 2), ("EvtVnd4", .bitfield32, 2),
    ])

    /// Model 203, three-phase wye meter (integer and scale factor).
    public static let meterWye: ModelLayout = {
        var fields: [(String, PointType, Int)] = [
            ("A", .int16, 1), ("AphA", .int16, 1), ("AphB", .int16, 1), ("AphC", .int16, 1), ("A_SF", .sunssf, 1),
            ("PhV", .int16, 1), ("PhVphA", .int16, 1), ("PhVphB", .int16, 1), ("PhVphC", .int16, 1),
            ("PPV", .int16, 1), ("PhVphAB", .int16, 1), ("PhVphBC", .int16, 1), ("PhVphCA", .int16, 1), ("V_SF", .sunssf, 1),
            ("Hz", .int16, 1), ("Hz_SF", .sunssf, 1),
        ]
        // W, VA, VAR and PF: a total, three phases and a scale factor each.
        for (quantity, sf) in [("W", "W_SF"), ("VA", "VA_SF"), ("VAR", "VAR_SF"), ("PF", "PF_SF")] {
            fields += [(quantity, .int16, 1)] + ["A", "B", "C"].map { ("\(quantity)ph\($0)", .int16, 1) } + [(sf, .sunssf, 1)]
        }
        // Accumulators: a total and three phases per direction, a scale factor per quantity.
        let accumulators: [([String], String)] = [
            (["TotWhExp", "TotWhImp"], "TotWh_SF"), (["TotVAhExp", "TotVAhImp"], "TotVAh_SF"),
            (["TotVArhImpQ1", "TotVArhImpQ2", "TotVArhExpQ3", "TotVArhExpQ4"], "TotVArh_SF"),
        ]
        for (names, sf) in accumulators {
            for name in names {
                fields += [(name, .acc32, 2)] + ["A", "B", "C"].map { ("\(name)Ph\($0)", .acc32, 2) }
            }
            fields.append((sf, .sunssf, 1))
        }
        fields.append(("Evt", .bitfield32, 2))
        return ModelLayout(id: 203, fields)
    }()
}
