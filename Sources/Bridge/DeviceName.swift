extension DeviceConfiguration {
    /// The device's id: the configured name, or else the serial number model 1 reports
    /// (`effectiveSerialNumber`: the configured one, or one made from host and port) with every
    /// character outside `[a-zA-Z0-9_-]` replaced by `-`. Both come from the configuration only,
    /// so the id is the same after every restart.
    public var effectiveName: String {
        if let name { return name }
        return String(String.UnicodeScalarView(effectiveSerialNumber.unicodeScalars.prefix(64).map {
            DeviceConfiguration.isNameCharacter($0) ? $0 : "-"
        }))
    }

    /// Whether `text` is a valid device name: 1 to 64 of `a-z A-Z 0-9 _ -`.
    public static func isValidName(_ text: String) -> Bool {
        (1...64).contains(text.unicodeScalars.count) && text.unicodeScalars.allSatisfy(isNameCharacter)
    }

    static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-": true
        default: false
        }
    }
}

extension BridgeConfiguration {
    /// Every device's name is valid and no two devices share one.
    func validateNames() throws(ConfigurationError) {
        var seen: [String: UInt8] = [:]
        for device in devices {
            let name = device.effectiveName
            guard DeviceConfiguration.isValidName(name) else {
                throw .invalid("device name '\(name)' must be 1 to 64 of the characters a-z A-Z 0-9 _ -")
            }
            if let other = seen.updateValue(device.unit, forKey: name) {
                throw .invalid("devices on unit \(other) and unit \(device.unit) are both named '\(name)'; give each its own name")
            }
        }
    }
}
