/// What model 1 (Common) says about a device.
public struct CommonInfo: Sendable, Equatable {
    public var manufacturer: String
    public var model: String
    public var options: String
    public var version: String
    public var serialNumber: String
    public var deviceAddress: UInt16

    public init(manufacturer: String, model: String, options: String, version: String, serialNumber: String, deviceAddress: UInt16) {
        self.manufacturer = manufacturer
        self.model = model
        self.options = options
        self.version = version
        self.serialNumber = serialNumber
        self.deviceAddress = deviceAddress
    }
}

/// Model 103's operating states (point St).
public enum OperatingState: UInt16, Sendable {
    case off = 1, sleeping, starting, mppt, throttled, shuttingDown, fault, standby
}

/// What the bridge knows of the inverters, for model 103.
public struct InverterValues: Sendable, Equatable {
    /// AC power, W.
    public var power: Int64
    /// Energy produced, Wh.
    public var lifetimeEnergy: UInt64
    public var state: OperatingState

    public init(power: Int64, lifetimeEnergy: UInt64, state: OperatingState) {
        self.power = power
        self.lifetimeEnergy = lifetimeEnergy
        self.state = state
    }
}

/// What the bridge knows of the grid connection, for model 203. Powers are + = import.
public struct MeterValues: Sendable, Equatable {
    /// Phase currents, 0.01 A.
    public var currents: [Int64]
    /// Line-to-neutral voltages, 0.1 V.
    public var voltages: [Int64]
    /// Phase real powers, W.
    public var powers: [Int64]
    /// Total real power, W.
    public var totalPower: Int64
    /// Energy taken from and sent to the grid, Wh.
    public var importedEnergy: UInt64
    public var exportedEnergy: UInt64

    public init(
        currents: [Int64], voltages: [Int64], powers: [Int64], totalPower: Int64, importedEnergy: UInt64,
        exportedEnergy: UInt64
    ) {
        precondition(currents.count == 3 && voltages.count == 3 && powers.count == 3, "three phases")
        self.currents = currents
        self.voltages = voltages
        self.powers = powers
        self.totalPower = totalPower
        self.importedEnergy = importedEnergy
        self.exportedEnergy = exportedEnergy
    }
}

/// The bridge's SunSpec register image: marker, model 1, model 103, model 203, end model.
///
/// Offsets are registers from `baseAddress`. The marker, model 1 and the end model never change;
/// models 103 and 203 come from one poll.
public enum SunSpecImage {
    public static let baseAddress: UInt16 = 40000
    /// "SunS".
    public static let marker: [UInt16] = [0x5375, 0x6E53]
    /// The end model: ID 0xFFFF, length 0.
    public static let endModel: [UInt16] = [0xFFFF, 0]

    public static let commonOffset = marker.count
    public static let inverterOffset = commonOffset + ModelLayout.common.size
    public static let meterOffset = inverterOffset + ModelLayout.inverterThreePhase.size
    public static let endOffset = meterOffset + ModelLayout.meterWye.size
    public static let size = endOffset + endModel.count

    /// The offsets whose registers never change and are served whatever the age of the data.
    public static let staticRanges: [Range<Int>] = [0..<inverterOffset, endOffset..<size]
    /// Models 103 and 203: the offsets that come from a poll.
    public static let liveRange: Range<Int> = inverterOffset..<endOffset

    /// The whole image with models 103 and 203 "not implemented" (they are only served from a poll).
    public static func staticImage(_ common: CommonInfo) -> [UInt16] {
        marker + commonModel(common) + ModelLayout.inverterThreePhase.notImplemented
            + ModelLayout.meterWye.notImplemented + endModel
    }

    /// `staticImage` with models 103 and 203 filled in.
    public static func image(static base: [UInt16], inverter: InverterValues, meter: MeterValues) -> [UInt16] {
        precondition(base.count == size, "a static image")
        var image = base
        image.replaceSubrange(liveRange, with: inverterModel(inverter) + meterModel(meter))
        return image
    }

    public static func commonModel(_ info: CommonInfo) -> [UInt16] {
        var model = ModelRegisters(.common)
        model.set("Mn", string: info.manufacturer)
        model.set("Md", string: info.model)
        model.set("Opt", string: info.options)
        model.set("Vr", string: info.version)
        model.set("SN", string: info.serialNumber)
        model.set("DA", uint16: info.deviceAddress)
        return model.registers
    }

    public static func inverterModel(_ values: InverterValues) -> [UInt16] {
        var model = ModelRegisters(.inverterThreePhase)
        model.setScaled(["W"], "W_SF", Scaled([values.power], exponent: 0, fitting: Scaled.int16))
        model.setScaled(["WH"], "WH_SF", Scaled([Int64(clamping: values.lifetimeEnergy)], exponent: 0, fitting: Scaled.acc32))
        model.set("St", uint16: values.state.rawValue)
        return model.registers
    }

    public static func meterModel(_ values: MeterValues) -> [UInt16] {
        var model = ModelRegisters(.meterWye)
        model.setScaled(
            ["A", "AphA", "AphB", "AphC"], "A_SF",
            Scaled([values.currents.reduce(0, +)] + values.currents, exponent: -2, fitting: Scaled.int16))
        let average = (Double(values.voltages.reduce(0, +)) / 3).rounded(.toNearestOrAwayFromZero)
        model.setScaled(
            ["PhV", "PhVphA", "PhVphB", "PhVphC"], "V_SF",
            Scaled([Int64(average)] + values.voltages, exponent: -1, fitting: Scaled.int16))
        model.setScaled(
            ["W", "WphA", "WphB", "WphC"], "W_SF", Scaled([values.totalPower] + values.powers, exponent: 0, fitting: Scaled.int16))
        model.setScaled(
            ["TotWhImp", "TotWhExp"], "TotWh_SF",
            Scaled([Int64(clamping: values.importedEnergy), Int64(clamping: values.exportedEnergy)], exponent: 0, fitting: Scaled.acc32))
        return model.registers
    }
}

extension ModelRegisters {
    /// Sets `names` (int16 or acc32 points) to `scaled`'s values and `sf` to its scale factor.
    mutating func setScaled(_ names: [String], _ sf: String, _ scaled: Scaled) {
        for (name, value) in zip(names, scaled.values) {
            switch layout.point(name)?.type {
            case .int16: set(name, int16: Int16(value))
            case .acc32: set(name, uint32: UInt32(value))
            default: preconditionFailure("\(name) is not an int16 or acc32 point")
            }
        }
        set(sf, int16: scaled.scaleFactor)
    }
}
