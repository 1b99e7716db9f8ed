import DurableFiles
import Foundation
import SEC1000Client
import Testing

/// The filter hides the device's false 0 W inverter readings (protocol notes, "Known device
/// faults" item 2) without ever hiding a real, lasting 0 such as the night.
@Suite("Zero-power filter")
struct ZeroPowerFilterTests {
    /// One reading: the raw value at a Unix time, and what the filter must report for it.
    struct Step: Sendable {
        let raw: Int32
        let time: Double
        let value: Int32
        let substituted: Bool

        /// A value the filter must pass through unchanged.
        static func passes(_ raw: Int32, at time: Double) -> Step {
            Step(raw: raw, time: time, value: raw, substituted: false)
        }

        /// A zero the filter must replace by `value`.
        static func zero(at time: Double, becomes value: Int32) -> Step {
            Step(raw: 0, time: time, value: value, substituted: true)
        }
    }

    struct FilterCase: Sendable, CustomTestStringConvertible {
        let name: String
        var capacity = 10
        var maximumAge = 1200.0
        let steps: [Step]
        var testDescription: String { name }
    }

    static let tenZerosInARow: [Step] = {
        var steps: [Step] = [.passes(3000, at: 0)]
        for index in 1...9 { steps.append(.zero(at: Double(index) * 30, becomes: 3000)) }
        for index in 10...13 { steps.append(.passes(0, at: Double(index) * 30)) }
        return steps + [.passes(200, at: 14 * 30), .zero(at: 15 * 30, becomes: 200)]
    }()

    static let cases: [FilterCase] = [
        FilterCase(name: "non-zero values pass through", steps: [
            .passes(3000, at: 0), .passes(3100, at: 30), .passes(-5, at: 60), .passes(2900, at: 90),
        ]),
        FilterCase(name: "a single zero is replaced by the newest non-zero value", steps: [
            .passes(3000, at: 0), .passes(3200, at: 30), .zero(at: 60, becomes: 3200), .passes(3300, at: 90),
        ]),
        FilterCase(name: "an empty cache lets 0 through", steps: [
            .passes(0, at: 0), .passes(0, at: 30), .passes(1500, at: 60),
        ]),
        FilterCase(name: "the 10th zero in a row gets through, and so do later ones (night)", steps: tenZerosInARow),
        FilterCase(name: "with capacity 3 the 3rd zero gets through", capacity: 3, steps: [
            .passes(3000, at: 0), .zero(at: 30, becomes: 3000), .zero(at: 60, becomes: 3000), .passes(0, at: 90),
        ]),
        FilterCase(name: "a zero after more than the maximum age passes through", steps: [
            .passes(3000, at: 0), .passes(0, at: 1200.5), .passes(0, at: 1230),
        ]),
        FilterCase(name: "a zero exactly at the maximum age is still replaced", steps: [
            .passes(3000, at: 0), .zero(at: 1200, becomes: 3000),
        ]),
        FilterCase(name: "the age counts from the last update, zeros included", steps: [
            .passes(3000, at: 0), .zero(at: 1000, becomes: 3000), .zero(at: 2000, becomes: 3000),
        ]),
        FilterCase(name: "a clock set back by more than the maximum age forgets the cache", steps: [
            .passes(3000, at: 5000), .passes(0, at: 3000),
        ]),
    ]

    @Test(arguments: cases)
    func sequence(_ sequence: FilterCase) {
        var filter = ZeroPowerFilter(capacity: sequence.capacity, maximumAge: sequence.maximumAge)
        for (index, step) in sequence.steps.enumerated() {
            let output = filter.filter(step.raw, at: step.time)
            #expect(output.value == step.value && output.substituted == step.substituted,
                    "step \(index): raw \(step.raw) at \(step.time) gave \(output.value), substituted \(output.substituted)")
        }
    }

    @Test func cacheKeepsOnlyTheNewestValues() {
        var filter = ZeroPowerFilter(capacity: 3, maximumAge: 1200)
        for (index, raw) in [1, 2, 3, 4, 5].enumerated() { _ = filter.filter(Int32(raw), at: Double(index)) }
        #expect(filter.values == [3, 4, 5])
        #expect(filter.updated == 4)
    }
}

/// The cache file lets one-shot runs (`sec1000 read` from cron) share the filter's memory. A bad
/// file must never stop a reading, and a crash mid-write must never leave a half-written cache.
@Suite("Zero-power cache file")
struct ZeroPowerCacheFileTests {
    /// A fresh directory under the system's temporary directory, removed afterwards.
    static func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sec1000-client-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }

    @Test func savedFilterLoadsBackEqual() throws {
        try Self.withTemporaryDirectory { directory in
            var filter = ZeroPowerFilter(capacity: 10, maximumAge: 1200)
            for (index, raw) in [3000, -12, 0, 2_147_483_647, -2_147_483_648].enumerated() {
                _ = filter.filter(Int32(raw), at: 1_732_582_800.123456 + Double(index))
            }
            let file = ZeroPowerCacheFile(path: directory + "/cache")
            try file.save(filter)
            #expect(file.load(capacity: 10, maximumAge: 1200) == filter)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["cache"],
                    "the save left a temporary file behind")
        }
    }

    /// What a later run sees: the earlier run's non-zero value stands in for a false zero.
    @Test func loadedCacheSubstitutesAcrossRuns() throws {
        try Self.withTemporaryDirectory { directory in
            let file = ZeroPowerCacheFile(path: directory + "/cache")
            var first = file.load(capacity: 10, maximumAge: 1200)
            _ = first.filter(3000, at: 1_000_000)
            try file.save(first)
            var second = file.load(capacity: 10, maximumAge: 1200)
            let output = second.filter(0, at: 1_000_030)
            #expect(output.value == 3000 && output.substituted)
        }
    }

    @Test func saveCreatesMissingDirectoriesAndReplacesTheOldFile() throws {
        try Self.withTemporaryDirectory { directory in
            let file = ZeroPowerCacheFile(path: directory + "/a/b/cache")
            try file.save(ZeroPowerFilter(values: [1], updated: 10))
            try file.save(ZeroPowerFilter(values: [2, 3], updated: 20))
            #expect(file.load(capacity: 10, maximumAge: 1200).values == [2, 3])
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/a/b") == ["cache"])
        }
    }

    @Test func missingFileLoadsEmpty() throws {
        try Self.withTemporaryDirectory { directory in
            let filter = ZeroPowerCacheFile(path: directory + "/absent").load(capacity: 10, maximumAge: 1200)
            #expect(filter == ZeroPowerFilter(capacity: 10, maximumAge: 1200))
        }
    }

    static let corruptContents: [[UInt8]] = [
        [],
        Array("garbage".utf8),
        Array("sec1000-zero-power-cache 1\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated 1000".utf8),
        Array("sec1000-zero-power-cache 2\nupdated 1000\nvalues 3000\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated soon\nvalues 3000\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated nan\nvalues 3000\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated inf\nvalues 3000\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated 1000\nvalues 3000 lots 12\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated 1000\nvalues 99999999999\n".utf8),
        Array("sec1000-zero-power-cache 1\nupdated 1000\nvalues 3.5\n".utf8),
        [0xFF, 0xFE, 0x00, 0x80, 0x0A, 0xC3],
    ]

    @Test(arguments: corruptContents)
    func corruptFileLoadsEmpty(contents: [UInt8]) throws {
        try Self.withTemporaryDirectory { directory in
            let path = directory + "/cache"
            #expect(FileManager.default.createFile(atPath: path, contents: Data(contents)))
            let filter = ZeroPowerCacheFile(path: path).load(capacity: 10, maximumAge: 1200)
            #expect(filter == ZeroPowerFilter(capacity: 10, maximumAge: 1200))
        }
    }

    @Test func directoryInPlaceOfTheFileLoadsEmptyAndFailsToSave() throws {
        try Self.withTemporaryDirectory { directory in
            let path = directory + "/cache"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            let file = ZeroPowerCacheFile(path: path)
            #expect(file.load(capacity: 10, maximumAge: 1200) == ZeroPowerFilter(capacity: 10, maximumAge: 1200))
            #expect(throws: FileError.self) { try file.save(ZeroPowerFilter(values: [1], updated: 1)) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["cache"],
                    "the failed save left a temporary file behind")
        }
    }

    /// Links planted at the temporary names a save used to take (`PATH.tmp.<pid>`, predictable)
    /// and at the cache path's neighbours are never followed: the file they point at is unchanged.
    @Test func linksPlantedAtPredictableTemporaryNamesAreNotFollowed() throws {
        try Self.withTemporaryDirectory { directory in
            let victim = directory + "/victim", path = directory + "/cache"
            #expect(FileManager.default.createFile(atPath: victim, contents: Data("secret\n".utf8)))
            for name in ["\(path).tmp.\(getpid())", "\(path).tmp", "\(path).tmp.0", "\(path).new"] {
                try FileManager.default.createSymbolicLink(atPath: name, withDestinationPath: victim)
            }
            try ZeroPowerCacheFile(path: path).save(ZeroPowerFilter(values: [3000], updated: 1))
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "secret\n")
            #expect(ZeroPowerCacheFile(path: path).load(capacity: 10, maximumAge: 1e12).values == [3000])
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect(attributes[.type] as? FileAttributeType == .typeRegular, "the cache path became a link")
        }
    }

    @Test func unwritablePlaceThrowsNamingThePath() throws {
        try Self.withTemporaryDirectory { directory in
            // A regular file where a directory should be: fails even for root.
            #expect(FileManager.default.createFile(atPath: directory + "/file", contents: Data()))
            let path = directory + "/file/cache"
            let error = #expect(throws: FileError.self) {
                try ZeroPowerCacheFile(path: path).save(ZeroPowerFilter(values: [1], updated: 1))
            }
            #expect(error?.path == path)
            #expect(error?.description.contains(path) == true)
        }
    }
}
