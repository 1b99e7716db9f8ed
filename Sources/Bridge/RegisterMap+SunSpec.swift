import SEC1000Protocol
import SunSpec

extension RegisterMap {
    /// Block E, energy counters: import, export, production, each uint64 Wh, high word first.
    public static let blockE: Range<UInt16> = 400..<412
    /// The SunSpec image: marker, model 1, model 103, model 203, end model.
    public static let sunSpec: Range<UInt16> = SunSpecImage.baseAddress..<(SunSpecImage.baseAddress + UInt16(SunSpecImage.size))

    /// Block E's 12 registers.
    public static func energyRegisters(_ counters: EnergyCounters) -> [UInt16] {
        EnergyCounter.allCases.flatMap { counter -> [UInt16] in
            let value = counters.wholeWh(counter)
            return [UInt16(value >> 48), UInt16(value >> 32 & 0xFFFF), UInt16(value >> 16 & 0xFFFF), UInt16(value & 0xFFFF)]
        }
    }

    /// Whether a read of the SunSpec image touches only the parts that never change (marker,
    /// model 1, end model), which are served whatever the age of the data.
    public static func isStaticSunSpecRead(address: UInt16, count: Int) -> Bool {
        let start = Int(address) - Int(SunSpecImage.baseAddress)
        return SunSpecImage.staticRanges.contains { $0.lowerBound <= start && start + count <= $0.upperBound }
    }

    /// The whole SunSpec image for one poll: `base` (the device's static image) with models 103
    /// and 203 from `reading` and the energy counters.
    public static func sunSpecRegisters(base: [UInt16], reading: Reading, energy: EnergyCounters) -> [UInt16] {
        let inverters = Int64(reading.invertersPower)
        let inverter = InverterValues(
            power: inverters, lifetimeEnergy: energy.wholeWh(.production), state: inverters > 0 ? .mppt : .sleeping)
        let meter = MeterValues(
            currents: reading.currents.map(Int64.init), voltages: reading.voltages.map(Int64.init),
            powers: reading.phasePowers.map(Int64.init), totalPower: Int64(reading.gridPower),
            importedEnergy: energy.wholeWh(.gridImport), exportedEnergy: energy.wholeWh(.gridExport))
        return SunSpecImage.image(static: base, inverter: inverter, meter: meter)
    }
}

extension Sample {
    /// Encodes one good poll for every block it feeds, so a request never mixes two polls and the
    /// Modbus thread only copies registers.
    init(reading: Reading, energy: EnergyCounters, sunSpecBase: [UInt16]) {
        self.init(
            reading: reading, registers: RegisterMap.measurementRegisters(RegisterMap.blockAValues(reading)),
            energy: energy, energyRegisters: RegisterMap.energyRegisters(energy),
            sunSpecRegisters: RegisterMap.sunSpecRegisters(base: sunSpecBase, reading: reading, energy: energy))
    }

    /// The registers that hold `block` (A, B, E or the SunSpec image) and the index of its first one.
    func source(for block: Range<UInt16>) -> (registers: [UInt16], start: Int) {
        switch block {
        case RegisterMap.blockE: (energyRegisters, 0)
        case RegisterMap.sunSpec: (sunSpecRegisters, 0)
        case RegisterMap.blockB: (registers, 28)
        default: (registers, 0)
        }
    }
}
