#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Bridge
import OptionValues
import SEC1000Protocol
import Sockets
import Yams

/// A mistake in the configuration file, with where it is; printed as `FILE:LINE:COLUMN: message`.
public struct ConfigurationFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int
    public let column: Int
    public let message: String

    public init(path: String, line: Int, column: Int, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(path):\(line):\(column): \(message)" }
}

/// A checked configuration file (Docs/configuration.md): its top-level keys as the bridge's
/// command-line arguments, and its devices.
public struct ConfigurationFile: Sendable {
    /// One top-level key and the arguments it stands for (`interval: 15` is `--interval 15`).
    public struct Entry: Sendable {
        public let key: String
        public let arguments: [String]
        public let secret: Bool
        public let line: Int
    }

    public let path: String
    public let entries: [Entry]
    /// The devices of `devices:`, in the file's order; empty when the file has none.
    public let devices: [DeviceConfiguration]
    /// The `energy-*-wh` values of the devices, by unit.
    public let alignments: [UInt8: [EnergyCounter: UInt64]]

    /// Reads and checks `path` (`-` reads standard input) against `keys`.
    public static func load(_ path: String, keys: [ConfigurationKey] = ConfigurationKey.bridge) throws(ConfigurationFileError) -> ConfigurationFile {
        let (text, ownerOnly) = try readFile(path)
        return try parse(text, path: path, ownerOnly: ownerOnly, keys: keys)
    }

    /// Checks `text` as the contents of the file `path`; `ownerOnly` tells whether the file's mode
    /// lets only its owner read it, which secrets require.
    public static func parse(
        _ text: String, path: String, ownerOnly: Bool, keys: [ConfigurationKey] = ConfigurationKey.bridge
    ) throws(ConfigurationFileError) -> ConfigurationFile {
        var parser = Parser(path: path, ownerOnly: ownerOnly, keys: keys)
        return try parser.parse(text)
    }

    /// The arguments of every entry whose option `given` does not name: the file's part of a
    /// command line, to go before the command line's own arguments.
    public func arguments(except given: Set<String>) -> [String] {
        entries.filter { !given.contains($0.key) }.flatMap(\.arguments)
    }

    static func readFile(_ path: String) throws(ConfigurationFileError) -> (String, Bool) {
        func failure(_ message: String) -> ConfigurationFileError {
            ConfigurationFileError(path: path, line: 1, column: 1, message: message)
        }
        let descriptor = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open the file: \(String(cString: strerror(errno)))") }
        defer { if descriptor != 0 { close(descriptor) } }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure("cannot read the file: \(String(cString: strerror(errno)))") }
        if status.st_mode & S_IFMT == S_IFDIR { throw failure("is a directory, not a configuration file") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw failure("cannot read the file: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += buffer[0..<count]
            // A configuration is a few kilobytes; this bounds a mistaken path such as /dev/zero.
            guard bytes.count <= 1 << 20 else { throw failure("the file is larger than 1 MiB; is it the right file?") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw failure("the file is not UTF-8 text") }
        return (text, status.st_mode & 0o077 == 0)
    }
}

/// Walks the YAML tree; every error names the node it is about.
struct Parser {
    let path: String
    let ownerOnly: Bool
    let keys: [ConfigurationKey]

    func error(_ node: Node?, _ message: String) -> ConfigurationFileError {
        ConfigurationFileError(path: path, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, message: message)
    }

    mutating func parse(_ text: String) throws(ConfigurationFileError) -> ConfigurationFile {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw yamlError(error)
        }
        guard let root else { throw ConfigurationFileError(path: path, line: 1, column: 1, message: "the file is empty: give devices: or simulate: true") }
        guard let mapping = root.mapping else { throw self.error(root, "the file must be a mapping of keys to values (key: value)") }
        var entries: [ConfigurationFile.Entry] = []
        var devices: [DeviceConfiguration] = []
        var alignments: [UInt8: [EnergyCounter: UInt64]] = [:]
        for (keyNode, value) in try pairs(mapping) {
            let name = keyNode.scalar!.string
            if name == "devices" {
                (devices, alignments) = try parseDevices(value)
                continue
            }
            guard let key = keys.first(where: { $0.name == name }) else {
                throw self.error(keyNode, "unknown key '\(name)'; the keys are the long options of sec1000 bridge (Docs/configuration.md)")
            }
            if key.secret && !ownerOnly {
                throw self.error(keyNode, "'\(name)' is a secret: the file must be readable by its owner only (chmod 600 \(path))")
            }
            entries.append(ConfigurationFile.Entry(
                key: name, arguments: try arguments(key, value), secret: key.secret, line: keyNode.mark?.line ?? 1))
        }
        return ConfigurationFile(path: path, entries: entries, devices: devices, alignments: alignments)
    }

    /// The pairs of a mapping whose keys are plain text, each given once.
    func pairs(_ mapping: Node.Mapping) throws(ConfigurationFileError) -> [(Node, Node)] {
        var seen: [String: Int] = [:]
        var result: [(Node, Node)] = []
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw error(key, "a key must be plain text") }
            if let line = seen[name] { throw error(key, "'\(name)' is given twice (first on line \(line))") }
            seen[name] = key.mark?.line ?? 1
            result.append((key, value))
        }
        return result
    }

    /// The text of a single value (not a list, a mapping or nothing).
    func scalar(_ name: String, _ value: Node) throws(ConfigurationFileError) -> String {
        guard let scalar = value.scalar else {
            throw error(value, "'\(name)' must be a single value, not a \(value.mapping != nil ? "mapping" : "list")")
        }
        if scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            throw error(value, "'\(name)' has no value")
        }
        return scalar.string
    }

    func checked(_ name: String, _ text: String, _ node: Node, _ check: (@Sendable (String) throws -> Void)?) throws(ConfigurationFileError) {
        do { try check?(text) } catch { throw self.error(node, "'\(name)': \(error)") }
    }

    func arguments(_ key: ConfigurationKey, _ value: Node) throws(ConfigurationFileError) -> [String] {
        let option = "--\(key.name)"
        switch key.kind {
        case .flag:
            switch (value.scalar?.style, try scalar(key.name, value)) {
            case (.plain, "true"): return [option]
            case (.plain, "false"): return []
            default: throw error(value, "'\(key.name)' must be true or false")
            }
        case .toggle:
            switch (value.scalar?.style, try scalar(key.name, value)) {
            case (.plain, "true"): return [option]
            case (.plain, "false"): return ["--no-\(key.name)"]
            default: throw error(value, "'\(key.name)' must be true or false")
            }
        case .value(let check):
            let text = try scalar(key.name, value)
            try checked(key.name, text, value, check)
            return [option, text]
        case .choice(let choices):
            let text = try scalar(key.name, value)
            guard choices.contains(text) else {
                throw error(value, "'\(key.name)' must be one of \(choices.joined(separator: ", ")), not '\(text)'")
            }
            return [option, text]
        case .list(let check):
            guard let sequence = value.sequence else { throw error(value, "'\(key.name)' must be a list ([a, b], or one '- item' a line)") }
            var result: [String] = []
            for item in sequence {
                let text = try scalar(key.name, item)
                try checked(key.name, text, item, check)
                result += [option, text]
            }
            return result
        }
    }

    func parseDevices(_ value: Node) throws(ConfigurationFileError) -> ([DeviceConfiguration], [UInt8: [EnergyCounter: UInt64]]) {
        guard let sequence = value.sequence else { throw error(value, "'devices' must be a list of devices, each a mapping with host:") }
        var devices: [DeviceConfiguration] = []
        var marks: [Node] = []
        var alignments: [UInt8: [EnergyCounter: UInt64]] = [:]
        for item in sequence {
            guard let mapping = item.mapping else { throw error(item, "a device must be a mapping (host: ..., unit: ...)") }
            var fields: [String: (Node, Node)] = [:]
            for (key, value) in try pairs(mapping) {
                let name = key.scalar!.string
                guard ConfigurationKey.deviceKeys.contains(name) else {
                    throw error(key, "unknown device key '\(name)'; a device has \(ConfigurationKey.deviceKeys.joined(separator: ", "))")
                }
                fields[name] = (key, value)
            }
            guard let (_, hostNode) = fields["host"] else { throw error(item, "a device needs host:") }
            let host = try scalar("host", hostNode)
            var device = DeviceConfiguration(address: SocketAddress(host: host, port: 1234))
            if let (_, node) = fields["port"] { device.address.port = try number("port", node, NumberArgument.integer(UInt16(1)...65535)) }
            if let (_, node) = fields["unit"] { device.unit = try number("unit", node, NumberArgument.integer(UInt8(1)...247)) }
            if let (_, node) = fields["serial"] {
                let serial = try scalar("serial", node)
                guard (1...32).contains(serial.utf8.count), serial.unicodeScalars.allSatisfy({ (0x20..<0x7F).contains($0.value) }) else {
                    throw error(node, "'serial' must be 1 to 32 printable ASCII characters")
                }
                device.serialNumber = serial
            }
            if let (_, node) = fields["name"] {
                let name = try scalar("name", node)
                guard DeviceConfiguration.isValidName(name) else {
                    throw error(node, "'name' must be 1 to 64 of the characters a-z A-Z 0-9 _ -, not '\(name)'")
                }
                device.name = name
            }
            if let (_, node) = fields["grid-sign"] {
                let text = try scalar("grid-sign", node)
                guard let sign = GridSign(rawValue: text) else {
                    throw error(node, "'grid-sign' must be one of \(GridSign.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
                }
                device.gridSign = sign
            }
            if let (_, node) = fields["meter-mode"] {
                let text = try scalar("meter-mode", node)
                guard let mode = MeterMode(optionName: text) else {
                    throw error(node, "'meter-mode' must be one of \(MeterMode.allCases.map(\.optionName).joined(separator: ", ")), not '\(text)'")
                }
                device.meterMode = mode
            }
            // Units and names are the device's identity on Modbus and elsewhere: each once.
            let unitNode = fields["unit"]?.1 ?? item
            if let other = devices.firstIndex(where: { $0.unit == device.unit }) {
                throw error(unitNode, "unit \(device.unit) is already the unit of the device on line \(marks[other].mark?.line ?? 1); give each device its own unit")
            }
            if let other = devices.firstIndex(where: { $0.effectiveName == device.effectiveName }) {
                throw error(fields["name"]?.1 ?? item,
                            "the name '\(device.effectiveName)' is already the name of the device on line \(marks[other].mark?.line ?? 1); give each device its own name")
            }
            for (key, counter) in [("energy-import-wh", EnergyCounter.gridImport), ("energy-export-wh", .gridExport), ("energy-production-wh", .production)] {
                if let (_, node) = fields[key] {
                    alignments[device.unit, default: [:]][counter] = try number(key, node, NumberArgument.integer(UInt64(0)...UInt64.max))
                }
            }
            devices.append(device)
            marks.append(item)
        }
        return (devices, alignments)
    }

    func number<T>(_ name: String, _ node: Node, _ parse: @Sendable (String) throws -> T) throws(ConfigurationFileError) -> T {
        let text = try scalar(name, node)
        do { return try parse(text) } catch { throw self.error(node, "'\(name)': \(error)") }
    }

    /// Yams's syntax errors carry libyaml's position.
    func yamlError(_ error: any Error) -> ConfigurationFileError {
        if let yaml = error as? YamlError {
            switch yaml {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
                return ConfigurationFileError(path: path, line: mark.line, column: mark.column, message: "not valid YAML: \(problem)")
            case .composer(_, let problem, let mark, _):
                return ConfigurationFileError(path: path, line: mark.line, column: mark.column, message: "not valid YAML: \(problem)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                // Yams points at the key's first use.
                return ConfigurationFileError(
                    path: path, line: context.mark.line, column: context.mark.column,
                    message: "'\(duplicates.joined(separator: "', '"))' is given more than once in this mapping")
            default: break
            }
        }
        return ConfigurationFileError(path: path, line: 1, column: 1, message: "not valid YAML: \(error)")
    }
}
