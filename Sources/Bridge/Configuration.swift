import ModbusServer
import SEC1000Client
import SEC1000Protocol
import Sockets

/// One SEC1000 and the unit id it is served on.
public struct DeviceConfiguration: Sendable, Equatable {
    public var address: SocketAddress
    public var unit: UInt8
    /// SunSpec model 1's serial number; `nil` makes one from the address (`effectiveSerialNumber`).
    public var serialNumber: String?
    /// The device's id in logs, topics and labels, `[a-zA-Z0-9_-]{1,64}`; `nil` makes one from the
    /// serial number (`effectiveName`).
    public var name: String?
    /// This device's own sign convention; `nil` follows `BridgeConfiguration.gridSign`.
    public var gridSign: GridSign?
    /// The meter mode this device was commissioned with; `nil` follows `ControlConfiguration.meterMode`.
    public var meterMode: MeterMode?

    public init(
        address: SocketAddress, unit: UInt8 = 1, serialNumber: String? = nil, name: String? = nil, gridSign: GridSign? = nil,
        meterMode: MeterMode? = nil
    ) {
        self.address = address
        self.unit = unit
        self.serialNumber = serialNumber
        self.name = name
        self.gridSign = gridSign
        self.meterMode = meterMode
    }

    /// Parses `HOST[:PORT][@UNIT]` (port 1234 and unit 1 by default).
    public init(parsing text: String) throws(ConfigurationError) {
        var hostPart = Substring(text)
        var unit: UInt8 = 1
        if let at = text.lastIndex(of: "@") {
            let unitText = text[text.index(after: at)...]
            guard let parsed = UInt8(unitText), (1...247).contains(parsed) else {
                throw .invalid("--device \(text): the unit id '\(unitText)' must be 1 to 247")
            }
            unit = parsed
            hostPart = text[..<at]
        }
        do {
            self.init(address: try SocketAddress(parsing: String(hostPart), defaultPort: 1234), unit: unit)
        } catch {
            throw .invalid("--device \(text): \(error)")
        }
    }
}

/// How the device reports the sign of the meter power.
public enum GridSign: String, Sendable, CaseIterable {
    /// + = power taken from the grid (the original tool's reading).
    case importPositive = "import-positive"
    /// + = power sent to the grid (GoodWe inverters' convention).
    case exportPositive = "export-positive"
}

/// Who may change the device's export settings through Modbus writes, and within what bounds.
public struct ControlConfiguration: Sendable, Equatable {
    /// Writes are refused (0x01) unless enabled.
    public var enabled: Bool
    /// Client networks allowed to write; empty refuses everyone, even when enabled.
    public var allow: [AddressRange]
    public var limits: ControlLimits
    /// The longest a write may take on the device before it is answered 0x0B.
    public var writeTimeout: Duration
    /// Read the settings (0x43) every this many good polls.
    public var settingsEvery: Int
    /// Set the device clock from the host at start and once a day.
    public var syncClock: Bool
    /// The meter mode the devices were commissioned with (`--meter-mode`). The device does not
    /// report it, and every limit change must carry it: known from the start, a limit can be
    /// changed alone before any write has set it.
    public var meterMode: MeterMode?

    public init(
        enabled: Bool = false, allow: [AddressRange] = [], limits: ControlLimits = ControlLimits(),
        writeTimeout: Duration = .seconds(30), settingsEvery: Int = 30, syncClock: Bool = false, meterMode: MeterMode? = nil
    ) {
        self.enabled = enabled
        self.allow = allow
        self.limits = limits
        self.writeTimeout = writeTimeout
        self.settingsEvery = max(1, settingsEvery)
        self.syncClock = syncClock
        self.meterMode = meterMode
    }
}

extension MeterMode {
    /// Its name in options and configuration files, as `sec1000 settings set --meter-mode` takes it.
    public var optionName: String { self == .eachPhase ? "each-phase" : "sum" }

    public init?(optionName: String) {
        guard let mode = Self.allCases.first(where: { $0.optionName == optionName }) else { return nil }
        self = mode
    }
}

/// Everything `sec1000 bridge` needs.
public struct BridgeConfiguration: Sendable {
    public var devices: [DeviceConfiguration]
    public var listen: SocketAddress
    /// Time between polls of one device.
    public var interval: Duration
    /// Data older than this are not served (exception 0x0B).
    public var staleAfter: Duration
    public var maxConnections: Int
    public var idleTimeout: Duration
    public var gridSign: GridSign
    /// Timeouts of one transaction with a device.
    public var timeouts: Timeouts
    /// Attempts within one poll.
    public var retry: RetryPolicy
    /// The least time between two transactions with one device.
    public var minimumGap: Duration
    /// The longest pause between polls while a device keeps failing.
    public var maxBackoff: Duration
    /// The zero-power filter's size and maximum age (seconds).
    public var filterCapacity: Int
    public var filterMaximumAge: Double
    public var control: ControlConfiguration
    /// Energy counters, SunSpec identity and the grid-sign check (see Energy.swift and Identity.swift).
    public var energy = EnergyConfiguration()
    /// Reported in SunSpec model 1 and the Modbus device identification.
    public var version = bridgeVersion
    /// How long the inverters must read 0 W while the grid reads as export before the bridge warns
    /// that `gridSign` is probably inverted.
    public var signCheckAfter: Duration = .seconds(900)
    /// The plant maximum, W: a poll with a grid or inverters power beyond it adds no energy
    /// (`--max-plant-power`; see `EnergyIntegrator`).
    public var maxPlantPower: Double = BridgeConfiguration.defaultMaxPlantPower
    /// 10 MW: above the 6.9 MW a SEC1000 can measure (3 × 230 V × 10 kA, the largest low-voltage CT).
    public static let defaultMaxPlantPower: Double = 10_000_000
    /// Open Modbus connections from one client address at most (`--max-connections-per-address`).
    public var maxConnectionsPerAddress = ServerConfiguration.defaultMaxConnectionsPerAddress

    /// Descriptors kept for everything but Modbus clients: 32 for standard streams, the listener,
    /// the wake and signal pipes, the state files and the runtime, and 2 per device (its connection
    /// and one being replaced). The startup check needs `maxConnections` plus this.
    public var reservedDescriptors: Int { 32 + 2 * devices.count }

    /// Descriptors the Modbus server leaves free while it runs, so device polls and state-file
    /// writes still get one when clients have taken all the others: 2 per device and 8 for files.
    public var runtimeDescriptorReserve: Int { 8 + 2 * devices.count }

    public init(
        devices: [DeviceConfiguration], listen: SocketAddress = SocketAddress(host: "0.0.0.0", port: 502),
        interval: Duration = .seconds(10), staleAfter: Duration? = nil, maxConnections: Int = 64,
        idleTimeout: Duration = .seconds(60), gridSign: GridSign = .importPositive,
        timeouts: Timeouts = Timeouts(connect: .seconds(5), answer: .seconds(5)),
        retry: RetryPolicy = RetryPolicy(attempts: 3, wait: .seconds(2)), minimumGap: Duration = .seconds(1),
        maxBackoff: Duration = .seconds(60), filterCapacity: Int = 10, filterMaximumAge: Double = 1200,
        control: ControlConfiguration = ControlConfiguration()
    ) {
        self.devices = devices
        self.listen = listen
        self.interval = interval
        self.staleAfter = staleAfter ?? interval * 3
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.gridSign = gridSign
        self.timeouts = timeouts
        self.retry = retry
        self.minimumGap = minimumGap
        self.maxBackoff = maxBackoff
        self.filterCapacity = filterCapacity
        self.filterMaximumAge = filterMaximumAge
        self.control = control
    }

    /// Checks what the types cannot: at least one device, distinct unit ids, sensible durations.
    public func validate() throws(ConfigurationError) {
        guard !devices.isEmpty else { throw .invalid("at least one --device (or --simulate) is required") }
        var seen: Set<UInt8> = []
        for device in devices where !seen.insert(device.unit).inserted {
            throw .invalid("unit id \(device.unit) is given to two devices; use HOST@UNIT to tell them apart")
        }
        guard interval > .zero else { throw .invalid("--interval must be positive") }
        guard staleAfter >= interval else { throw .invalid("--stale-after must be at least the interval") }
        guard maxConnections >= 1 else { throw .invalid("--max-connections must be at least 1") }
        guard maxConnectionsPerAddress >= 1 else { throw .invalid("--max-connections-per-address must be at least 1") }
        guard idleTimeout > .zero else { throw .invalid("--idle-timeout must be positive") }
        guard control.writeTimeout > .zero else { throw .invalid("--write-timeout must be positive") }
        if let maximum = control.limits.maxExportLimit, maximum < 0 {
            throw .invalid("--max-export-limit must not be negative")
        }
        guard maxPlantPower > 0, maxPlantPower <= Double(Int32.max) else {
            throw .invalid("--max-plant-power must be more than 0 and at most 2147483647 W")
        }
        try validateEnergyAndIdentity()
        try validateNames()
    }
}

/// A configuration that cannot work; the message says which option and why.
public enum ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        }
    }
}
