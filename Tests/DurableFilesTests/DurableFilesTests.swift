@testable import DurableFiles
import Foundation
import Testing

/// A fresh directory under the system's temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("durable-files-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try body(directory)
}

func contents(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

func entries(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

@Suite("Atomic replacement")
struct AtomicWriteTests {
    /// The temporary file is opened with O_EXCL | O_NOFOLLOW: a symbolic link at the very name it
    /// picks is neither followed nor replaced; another name is taken.
    @Test func aLinkAtTheChosenTemporaryNameIsNotFollowed() throws {
        try withTemporaryDirectory { directory in
            let victim = directory + "/victim", path = directory + "/state"
            try "secret\n".write(toFile: victim, atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: directory + "/planted", withDestinationPath: victim)
            var names = [directory + "/planted", directory + "/fresh"]
            try writeAtomically(Array("new\n".utf8), to: path, calls: .system, temporaryName: { _ in names.removeFirst() })
            #expect(contents(victim) == "secret\n")
            #expect(contents(path) == "new\n")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: directory + "/planted") == victim)
            #expect(entries(directory) == ["planted", "state", "victim"])
        }
    }

    /// When every name it is given is taken, it gives up with an error, still touching nothing.
    @Test func onlyTakenNamesIsAnError() throws {
        try withTemporaryDirectory { directory in
            let victim = directory + "/victim", path = directory + "/state"
            try "secret\n".write(toFile: victim, atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: directory + "/planted", withDestinationPath: victim)
            let error = #expect(throws: FileError.self) {
                try writeAtomically(Array("new\n".utf8), to: path, calls: .system, temporaryName: { _ in directory + "/planted" })
            }
            #expect(error?.operation == .createTemporary)
            #expect(contents(victim) == "secret\n")
            #expect(entries(directory) == ["planted", "victim"])
        }
    }

    @Test func temporaryNamesAreRandomAndBesideTheFile() {
        let names = Set((0..<100).map { _ in randomTemporaryName(for: "/d/state") })
        #expect(names.count == 100)
        #expect(names.allSatisfy { $0.hasPrefix("/d/state.tmp-") && $0.count == "/d/state.tmp-".count + 16 })
    }

    /// A failed fsync or close means the data may not be on the disk: the save fails, the
    /// temporary file is removed, and the old file stays as it was. So does a failed rename.
    @Test(arguments: [FileError.Operation.sync, .close, .replace])
    func aFailingStepFailsTheSave(step: FileError.Operation) throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/state"
            try writeAtomically("old\n", to: path)
            var calls = SystemCalls.system
            switch step {
            case .sync: calls.fsync = { _ in errno = EIO; return -1 }
            case .close: calls.close = { fd in _ = close(fd); errno = EIO; return -1 }
            default: calls.rename = { _, _ in errno = EXDEV; return -1 }
            }
            let error = #expect(throws: FileError.self) {
                try writeAtomically(Array("new\n".utf8), to: path, calls: calls, temporaryName: randomTemporaryName)
            }
            #expect(error?.operation == step)
            #expect(error?.path == path)
            #expect(error?.errno == (step == .replace ? EXDEV : EIO))
            #expect(error?.description.contains(path) == true)
            #expect(contents(path) == "old\n")
            #expect(entries(directory) == ["state"], "the temporary file was left behind")
        }
    }

    @Test func aRestrictedFileIsNotWidenedAndANewOneIsNotSecret() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/state"
            try writeAtomically("one\n", to: path)
            let mask = umask(0o022)
            umask(mask)
            #expect(try permissions(path) == 0o644 & ~Int(mask))
            chmod(path, 0o600)
            try writeAtomically("two\n", to: path)
            #expect(try permissions(path) == 0o600)
            #expect(contents(path) == "two\n")
        }
    }

    @Test func aFileInTheWayOfTheDirectoryIsReported() throws {
        try withTemporaryDirectory { directory in
            try "x".write(toFile: directory + "/file", atomically: false, encoding: .utf8)
            let error = #expect(throws: FileError.self) { try writeAtomically("x", to: directory + "/file/sub/state") }
            #expect(error?.operation == .createDirectory)
            #expect(error?.path == directory + "/file/sub/state")
            #expect(error?.description.contains("not a directory") == true)
        }
    }

    func permissions(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }
}

@Suite("Small-file reads")
struct SmallFileTests {
    @Test func missingIsNilAndAFileIsItsBytes() throws {
        try withTemporaryDirectory { directory in
            #expect(try readSmallFile(directory + "/absent") == nil)
            try "abc".write(toFile: directory + "/file", atomically: false, encoding: .utf8)
            #expect(try readSmallFile(directory + "/file") == Array("abc".utf8))
        }
    }

    /// What cannot be read is an error, never "no file": a caller must not start afresh over it.
    @Test func whatCannotBeReadIsAnError() throws {
        try withTemporaryDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory + "/dir", withIntermediateDirectories: false)
            try "abc".write(toFile: directory + "/file", atomically: false, encoding: .utf8)
            try Data(count: 100).write(to: URL(fileURLWithPath: directory + "/big"))
            #expect(mkfifo(directory + "/fifo", 0o644) == 0)
            let cases: [(String, FileError.Reason)] = [
                ("/dir", .notARegularFile("a directory")),
                ("/fifo", .notARegularFile("a FIFO")),
                ("/file/under", .system(ENOTDIR)),
                ("/big", .tooLarge(limit: 99)),
            ]
            for (name, reason) in cases {
                let error = #expect(throws: FileError.self) { try readSmallFile(directory + name, limit: 99) }
                #expect(error?.reason == reason, "\(name)")
                #expect(error?.path == directory + name)
            }
        }
    }
}

@Suite("Set-aside copies and locks")
struct SetAsideAndLockTests {
    /// Two copies set aside in the same second get two names; neither replaces the other.
    @Test func setAsideCopiesNeverReplaceEachOther() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/state"
            var names: [String] = []
            for round in 1...3 {
                try "damaged \(round)\n".write(toFile: path, atomically: false, encoding: .utf8)
                names.append(try setAside(path, tag: "corrupt", at: 1_700_000_000))
            }
            #expect(names == [path + ".corrupt-20231114T221320Z", path + ".corrupt-20231114T221320Z-2", path + ".corrupt-20231114T221320Z-3"])
            #expect(names.map(contents) == ["damaged 1\n", "damaged 2\n", "damaged 3\n"])
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func aSecondLockOnOneFileIsRefusedUntilTheFirstIsReleased() throws {
        try withTemporaryDirectory { directory in
            let first = try FileLock.acquire(directory + "/sub/state.lock", for: directory + "/sub/state")
            let error = #expect(throws: FileError.self) { try FileLock.acquire(directory + "/sub/state.lock", for: directory + "/sub/state") }
            #expect(error?.reason == .heldByAnotherProcess)
            #expect(error?.description.contains(directory + "/sub/state.lock") == true)
            first.release()
            #expect(!first.isHeld)
            let second = try FileLock.acquire(directory + "/sub/state.lock", for: directory + "/sub/state")
            #expect(second.isHeld)
        }
    }

    @Test func aLinkAtTheLockNameIsNotFollowed() throws {
        try withTemporaryDirectory { directory in
            try FileManager.default.createSymbolicLink(atPath: directory + "/state.lock", withDestinationPath: directory + "/elsewhere")
            let error = #expect(throws: FileError.self) { try FileLock.acquire(directory + "/state.lock", for: directory + "/state") }
            #expect(error?.reason == .system(ELOOP))
            #expect(!FileManager.default.fileExists(atPath: directory + "/elsewhere"))
        }
    }
}
