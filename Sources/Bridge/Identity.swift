import ModbusServer
import SunSpec

/// The program's version, reported by `--version`, in the logs, in SunSpec model 1 and in the
/// Modbus device identification.
public let bridgeVersion = "0.1.0"

/// How the bridge names itself and its devices to energy managers.
public enum BridgeIdentity {
    public static let manufacturer = "GoodWe"
    public static let model = "SEC1000"
    /// SunSpec model 1's Opt: what serves these registers.
    public static let options = "sec1000 bridge"

    /// Model 1 for one device: its serial number and unit id, the bridge's version.
    public static func common(serialNumber: String, unit: UInt8, version: String) -> CommonInfo {
        CommonInfo(
            manufacturer: manufacturer, model: model, options: options, version: version,
            serialNumber: serialNumber, deviceAddress: UInt16(unit))
    }

    /// Function 43 / MEI 14's objects, the same for every unit. The SEC1000 does not report its
    /// firmware version, so the revision is the bridge's.
    public static func deviceIdentification(version: String) -> DeviceIdentification {
        DeviceIdentification(
            vendorName: manufacturer, productCode: model, majorMinorRevision: version,
            vendorURL: "https://www.goodwe.com", productName: "SEC1000 Smart Energy Controller (sec1000 bridge)",
            modelName: model)
    }
}

extension DeviceConfiguration {
    /// The serial number model 1 reports: the configured one, or one made from the device's
    /// address, which is stable across restarts and unique per device.
    public var effectiveSerialNumber: String {
        if let serialNumber { return serialNumber }
        let readable = "SEC1000-\(address.host)-\(address.port)"
        if readable.utf8.count <= 32, readable.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-.:".contains($0)) }) {
            return readable
        }
        // Long host names and IPv6 addresses: a hash of the address keeps it within 32 characters.
        let hash = fnv1a("\(address.host):\(address.port)")
        return "SEC1000-" + hex32(hash).uppercased()
    }
}
