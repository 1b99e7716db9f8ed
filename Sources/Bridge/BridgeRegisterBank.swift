import ModbusServer

/// Serves every configured device's registers on its unit id, following the contract's answer table.
public struct BridgeRegisterBank: RegisterBank {
    private let fleet: DeviceFleet

    /// The fleet's devices as they are at each request; unit ids 0 and 255 reach the first one
    /// unless configured.
    public init(fleet: DeviceFleet) {
        self.fleet = fleet
    }

    /// `devices` alone, for judging requests without device services (fuzzing).
    public init(devices: [DeviceState]) {
        self.fleet = DeviceFleet(states: devices)
    }

    /// One lookup under one short lock: this runs twice for every request.
    private func device(_ unit: UInt8) -> DeviceState? {
        fleet.state(unit: unit)
    }

    public func write(_ request: WriteRequest, completion: WriteCompletion) -> ModbusException? {
        guard let unit = device(request.unit)?.unit, let service = fleet.service(unit: unit) else { return .illegalFunction }
        return service.write(request, completion: completion)
    }

    public func serves(unit: UInt8) -> Bool { device(unit) != nil }

    public func read(unit: UInt8, address: UInt16, into registers: UnsafeMutableBufferPointer<UInt16>) -> ModbusException? {
        guard let device = device(unit) else { return .gatewayPathUnavailable }
        let end = Int(address) + registers.count
        guard let block = RegisterMap.blocks.first(where: { $0.contains(address) }), end <= Int(block.upperBound) else {
            return .illegalDataAddress
        }
        let snapshot = device.current
        let now = ContinuousClock.now
        let source: [UInt16]
        let offset: Int
        if block == RegisterMap.blockC {
            source = device.statusRegisters(snapshot, at: now)
            offset = Int(address - block.lowerBound)
        } else if block == RegisterMap.blockD {
            source = device.controlRegisters(snapshot, at: now)
            offset = Int(address - block.lowerBound)
        } else if block == RegisterMap.sunSpec, RegisterMap.isStaticSunSpecRead(address: address, count: registers.count) {
            source = device.sunSpecStatic
            offset = Int(address - block.lowerBound)
        } else {
            guard let sample = snapshot.sample, device.isFresh(sample, at: now) else {
                return .gatewayTargetFailedToRespond
            }
            let (values, start) = sample.source(for: block)
            source = values
            offset = Int(address - block.lowerBound) + start
        }
        source.withUnsafeBufferPointer { values in
            _ = registers.update(fromContentsOf: values[offset..<(offset + registers.count)])
        }
        return nil
    }
}
