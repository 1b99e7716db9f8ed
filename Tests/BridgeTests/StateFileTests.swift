import Bridge
import Foundation
import Locking
import TestSupport
import Testing

/// Unit 1's record in the state file at `path`, if it holds a valid one.
private func loadUnit1(_ path: String) -> EnergyRecord? { (try? EnergyStateFile(path: path).load())?[1] }

/// The energy state file against a careless operator and a hostile local user (issue 14, defect 5):
/// links planted where the bridge writes, two bridges on one file, a directory or an unreadable
/// file given as the path, damaged files one after the other.
@Suite("State files: links, locks, unusable paths, set-aside copies", .timeLimit(.minutes(2)))
struct StateFileTests {
    func load(_ path: String) -> EnergyRecord? { loadUnit1(path) }

    /// The bridge's options for a start that should fail at once; if it does not, `timeout` kills it.
    func bridgeArguments(_ path: String, _ extra: [String] = []) -> [String] {
        ["bridge", "--simulate", "--capture", "--listen", "127.0.0.1:0", "--interval", "1", "--min-gap", "0",
         "--energy-state", path, "--energy-save-interval", "0.2"] + extra
    }

    func siblings(of path: String) -> [String] {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(name) }.sorted()
    }

    /// Links planted at the temporary names the bridge used to write (`PATH.tmp.<pid>`, the pid
    /// of the running bridge) point at a victim file; saves go on and the victim is unchanged.
    @Test func linksAtPredictableTemporaryNamesAreNotFollowedByARunningBridge() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy", victim = directory + "/victim"
            try Data("root's secret\n".utf8).write(to: URL(fileURLWithPath: victim))
            chmod(victim, 0o600)
            let bridge = try await BridgeProcess.start(["--energy-state", path, "--energy-save-interval", "0.2"])
            defer { bridge.stop() }
            for name in ["\(path).tmp.\(bridge.process.processIdentifier)", "\(path).tmp", "\(path).new"] {
                try FileManager.default.createSymbolicLink(atPath: name, withDestinationPath: victim)
            }
            // Two saves after the links were planted: production grows with every poll.
            try await waitUntil("a file") { load(path) != nil }
            let first = load(path)?.counters.production ?? 0
            try await waitUntil("a save") { (load(path)?.counters.production ?? 0) > first }
            let second = load(path)?.counters.production ?? 0
            try await waitUntil("another save") { (load(path)?.counters.production ?? 0) > second }
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root's secret\n")
            let type = try FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType
            #expect(type == .typeRegular, "the state file was replaced by a planted link")
        }
    }

    /// The same in-process, for the save itself, with the test's own pid.
    @Test func aSaveDoesNotFollowALinkAtTheOldTemporaryName() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy", victim = directory + "/victim"
            try Data("root's secret\n".utf8).write(to: URL(fileURLWithPath: victim))
            try FileManager.default.createSymbolicLink(atPath: "\(path).tmp.\(getpid())", withDestinationPath: victim)
            try EnergyStateFile(path: path).save([1: EnergyRecord(counters: EnergyCounters(gridImport: 1))])
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root's secret\n")
            #expect(load(path)?.counters.gridImport == 1)
        }
    }

    /// A second bridge on the first one's file refuses to start, naming the file; the first keeps
    /// running and its file keeps its values (not the second's 5,000,000 Wh).
    @Test func aSecondBridgeOnOneStateFileRefusesToStart() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let first = try await BridgeProcess.start(["--energy-state", path, "--energy-save-interval", "0.2", "--energy-import-wh", "7"])
            defer { first.stop() }
            try await waitUntil("the first bridge's file") { load(path) != nil }
            // The file is watched while the second bridge runs: it must never hold the second's value.
            let highest = Locked(0.0)
            let arguments = bridgeArguments(path, ["--energy-import-wh", "5000000"])
            let second = try await withThrowingTaskGroup(of: ProcessOutcome?.self) { group in
                group.addTask { try await runSEC1000(arguments, timeout: .seconds(10)) }
                group.addTask {
                    while !Task.isCancelled {
                        if let value = loadUnit1(path)?.counters.gridImport { highest.withLock { $0 = max($0, value) } }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                    return nil
                }
                // The watcher ends only when cancelled, so the first to finish is the second bridge.
                let outcome = try await group.next() ?? nil
                group.cancelAll()
                return try #require(outcome)
            }
            #expect(highest.withLock { $0 } == 7)
            #expect(second.status == 1, "\(second.everything)")
            #expect(second.errors.contains("error: the energy state file \(path) is in use by another sec1000 bridge"), "\(second.errors)")
            #expect(second.errors.contains(path + ".lock"))
            #expect(first.process.isRunning)
            let before = load(path)?.counters.production ?? 0
            try await waitUntil("the first bridge saving on") { (load(path)?.counters.production ?? 0) > before }
            let record = try #require(load(path))
            #expect(record.counters.gridImport == 7)
            #expect(record.applied[.gridImport] == 7)
        }
    }

    /// A directory, or a path under a regular file, is a startup error (exit 1, a message naming
    /// the path), and nothing is moved or created.
    @Test func aPathThatIsNotAFileIsAStartupError() async throws {
        try await withTemporaryDirectory { directory in
            let folder = directory + "/state"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: folder + "/inside"))
            try Data("a file\n".utf8).write(to: URL(fileURLWithPath: directory + "/file"))
            for (path, reason) in [(folder, "it is a directory"), (directory + "/file/energy", "Not a directory")] {
                let result = try await runSEC1000(bridgeArguments(path), timeout: .seconds(10))
                #expect(result.status == 1, "\(result.everything)")
                #expect(result.errors.contains("error: the energy state file \(path) cannot be used"), "\(result.errors)")
                #expect(result.errors.contains(reason), "\(result.errors)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["file", "state"])
            #expect(try String(contentsOfFile: folder + "/inside", encoding: .utf8) == "keep me\n")
        }
    }

    /// A state file the bridge has no permission to read is a startup error, not a reset to 0.
    /// Root reads a mode-000 file anyway, so as root the bridge runs as nobody (setpriv).
    @Test func anUnreadableStateFileIsAStartupError() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            let text = EnergyStateFile.encode([1: EnergyRecord(counters: EnergyCounters(gridImport: 5_000_000.5))])
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            var command = [try sec1000Executable().path] + bridgeArguments(path)
            if getuid() == 0 {
                // The directory is nobody's, so only the file's own mode keeps it from being read.
                #expect(chown(directory, 65534, 65534) == 0)
                command = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
            }
            chmod(path, 0o000)
            let result = try await runToEnd(command, timeout: .seconds(10))
            #expect(result.status == 1, "\(result.everything)")
            #expect(result.errors.contains("error: the energy state file \(path) cannot be used"), "\(result.errors)")
            #expect(result.errors.contains("Permission denied"), "\(result.errors)")
            chmod(path, 0o600)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
            #expect(siblings(of: path).allSatisfy { $0 == "energy" || $0 == "energy.lock" }, "\(siblings(of: path))")
        }
    }

    /// Two damaged files one after the other leave two set-aside copies, the first not replaced by
    /// the second.
    @Test func twoDamagedFilesInARowLeaveTwoCopies() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/energy"
            for round in 1...2 {
                try Data("sec1000-energy 1\nunit=1 import=\(round) export=0 production=0\n".utf8).write(to: URL(fileURLWithPath: path))
                try await BridgeHarness.run(configure: { $0.energy.statePath = path }) { _ in
                    try await waitUntil("a valid file in place") { load(path) != nil }
                }
            }
            let copies = siblings(of: path).filter { $0.hasPrefix("energy.corrupt") }
            #expect(copies.count == 2, "\(siblings(of: path))")
            let texts = try copies.map { try String(contentsOfFile: directory + "/" + $0, encoding: .utf8) }
            #expect(Set(texts.compactMap { $0.split(separator: " ").first { $0.hasPrefix("import=") } }) == ["import=1", "import=2"])
        }
    }
}
