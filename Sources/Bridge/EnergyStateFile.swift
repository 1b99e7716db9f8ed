#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Hex
import DurableFiles

/// One device's stored counters, and the meter readings last set from the command line.
public struct EnergyRecord: Sendable, Equatable {
    public var counters: EnergyCounters
    /// For each counter, the value last applied from `--energy-*-wh`: a value left in a service
    /// file is applied once, not at every restart.
    public var applied: [EnergyCounter: UInt64]

    public init(counters: EnergyCounters = .zero, applied: [EnergyCounter: UInt64] = [:]) {
        self.counters = counters
        self.applied = applied
    }

    /// The record a device starts with: `stored` (nil when there is none), with every value of
    /// `alignments` that differs from the one last applied set as the counter's new value.
    public static func starting(
        stored: EnergyRecord?, alignments: [EnergyCounter: UInt64]
    ) -> (record: EnergyRecord, changed: [EnergyCounter]) {
        var record = stored ?? EnergyRecord()
        var changed: [EnergyCounter] = []
        for counter in EnergyCounter.allCases {
            guard let value = alignments[counter], stored?.applied[counter] != value else { continue }
            record.counters[counter] = Double(value)
            record.applied[counter] = value
            changed.append(counter)
        }
        return (record, changed)
    }
}

/// Why a state file was not loaded.
public enum EnergyStateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read at all (a directory, no permission, too large, an I/O error):
    /// nothing is known about its contents, so it must not be set aside or replaced.
    case cannotRead(FileError)
    /// The file is not empty and does not start as a state file does: some other file was given.
    case notAStateFile
    case notText
    case badHeader
    /// A line that is not what the format says.
    case malformedLine(Int, String)
    case missingChecksum
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case duplicateUnit(UInt8)

    /// Whether the file is a state file whose contents are damaged: the one case where it may be
    /// set aside and replaced.
    public var isDamagedContent: Bool {
        switch self {
        case .cannotRead, .notAStateFile: false
        default: true
        }
    }

    public var description: String {
        switch self {
        case .cannotRead(let error): "\(error)"
        case .notAStateFile: "it is not a sec1000 energy state file (it does not start with 'sec1000-energy')"
        case .notText: "it is not UTF-8 text"
        case .badHeader: "its first line is not 'sec1000-energy 1'"
        case .malformedLine(let line, let reason): "line \(line): \(reason)"
        case .missingChecksum: "it has no checksum line (truncated?)"
        case .checksumMismatch(let stored, let computed):
            "its checksum \(hex32(stored)) does not match its contents (\(hex32(computed)))"
        case .duplicateUnit(let unit): "unit \(unit) appears twice"
        }
    }
}

/// The energy counters of every device in one text file, written atomically (a temporary file
/// renamed over the old one), with a checksum so that a damaged file is noticed, not trusted.
///
/// ```
/// sec1000-energy 1
/// unit=1 import=1234.5 export=0.25 production=98765.125 applied-import=1000
/// checksum=89abcdef
/// ```
/// The checksum is FNV-1a (32 bits) of every byte before the checksum line.
public struct EnergyStateFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The lock file that keeps a second bridge off this file: `PATH.lock`.
    public var lockPath: String { path + ".lock" }

    /// The stored records by unit id; `nil` when there is no file.
    ///
    /// A file that cannot be read, or that is not a state file at all, throws an error whose
    /// `isDamagedContent` is false; only a state file with damaged contents throws one where it is true.
    public func load() throws(EnergyStateError) -> [UInt8: EnergyRecord]? {
        let bytes: [UInt8]
        do throws(FileError) {
            guard let read = try readSmallFile(path) else { return nil }
            bytes = read
        } catch {
            throw .cannotRead(error)
        }
        // Empty (truncated) or starting as a state file: ours, and damaged if it does not decode.
        // Anything else is some other file given by mistake, never to be moved or overwritten.
        let signature = Array("sec1000-energy".utf8)
        guard bytes.isEmpty || bytes.starts(with: signature) else { throw .notAStateFile }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .notText }
        return try Self.decode(text)
    }

    /// Stores `records` atomically (`DurableFiles.writeAtomically`), creating the directory if needed.
    public func save(_ records: [UInt8: EnergyRecord]) throws(FileError) {
        try writeAtomically(Self.encode(records), to: path)
    }

    /// Takes the lock that says this file is in use (`lockPath`), without waiting.
    public func lock() throws(FileError) -> FileLock {
        try FileLock.acquire(lockPath, for: path)
    }

    /// Moves a file whose contents were not trusted aside, to `PATH.corrupt-<UTC time>` (with `-2`,
    /// `-3`, ... when taken), never over an earlier copy, and returns the new name.
    public func setAsideCorrupt() throws(FileError) -> String {
        try setAside(path, tag: "corrupt")
    }

    public static func encode(_ records: [UInt8: EnergyRecord]) -> String {
        var text = "sec1000-energy 1\n"
        for (unit, record) in records.sorted(by: { $0.key < $1.key }) {
            text += "unit=\(unit)"
            for counter in EnergyCounter.allCases { text += " \(counter.rawValue)=\(record.counters[counter])" }
            for counter in EnergyCounter.allCases {
                if let value = record.applied[counter] { text += " applied-\(counter.rawValue)=\(value)" }
            }
            text += "\n"
        }
        return text + "checksum=\(hex32(fnv1a(text)))\n"
    }

    public static func decode(_ text: String) throws(EnergyStateError) -> [UInt8: EnergyRecord] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == "sec1000-energy 1" else { throw .badHeader }
        // The last line must be the checksum, followed by the final newline.
        guard lines.count >= 3, lines[lines.count - 1].isEmpty, lines[lines.count - 2].hasPrefix("checksum=") else {
            throw .missingChecksum
        }
        let checksumLine = lines[lines.count - 2]
        guard let stored = UInt32(checksumLine.dropFirst("checksum=".count), radix: 16) else {
            throw .malformedLine(lines.count - 1, "the checksum is not hexadecimal")
        }
        let covered = text.utf8.count - checksumLine.utf8.count - 1
        let computed = fnv1a(text.utf8.prefix(covered))
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }

        var records: [UInt8: EnergyRecord] = [:]
        for (index, line) in lines[1..<(lines.count - 2)].enumerated() {
            let number = index + 2
            var fields: [Substring: Substring] = [:]
            for field in line.split(separator: " ") {
                let parts = field.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, fields.updateValue(parts[1], forKey: parts[0]) == nil else {
                    throw .malformedLine(number, "'\(field)' is not a single KEY=VALUE")
                }
            }
            guard let unitText = fields.removeValue(forKey: "unit"), let unit = UInt8(unitText) else {
                throw .malformedLine(number, "no unit id")
            }
            var record = EnergyRecord()
            for counter in EnergyCounter.allCases {
                guard let text = fields.removeValue(forKey: Substring(counter.rawValue)), let value = Double(text),
                      value.isFinite, value >= 0
                else { throw .malformedLine(number, "no valid \(counter.rawValue) counter") }
                record.counters[counter] = value
                if let text = fields.removeValue(forKey: Substring("applied-\(counter.rawValue)")) {
                    guard let value = UInt64(text) else { throw .malformedLine(number, "bad applied-\(counter.rawValue)") }
                    record.applied[counter] = value
                }
            }
            if let unknown = fields.keys.first { throw .malformedLine(number, "unknown key '\(unknown)'") }
            guard records.updateValue(record, forKey: unit) == nil else { throw .duplicateUnit(unit) }
        }
        return records
    }
}

func fnv1a(_ text: String) -> UInt32 { fnv1a(text.utf8) }

func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt32 {
    var hash: UInt32 = 0x811C_9DC5
    for byte in bytes {
        hash ^= UInt32(byte)
        hash &*= 0x0100_0193
    }
    return hash
}

func hex32(_ value: UInt32) -> String { hexDigits(value, width: 8, uppercase: false) }
