#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The mode of a file created where none was: readable by all, as the files here are not secret.
public let defaultFileMode: mode_t = 0o644

/// Replaces `path` with `text` in one step: the text goes to a new temporary file beside it, is
/// synced and closed, and the temporary file is renamed over `path`; then the directory is synced
/// so the rename survives a power loss. Missing directories are created (mode 0755).
///
/// The temporary file gets a random name and is created with `O_EXCL | O_NOFOLLOW`, so nothing
/// planted in the directory (a symbolic link, a file) is ever followed or written to. A file
/// already at `path` keeps its permission bits; a new one gets `defaultFileMode` less the umask.
/// On any failure the temporary file is removed and `path` is left as it was (except when only
/// the final directory sync fails: then the new contents are in place but may not survive a
/// power loss, and that is reported too).
public func writeAtomically(_ text: String, to path: String) throws(FileError) {
    try writeAtomically(Array(text.utf8), to: path, calls: .system, temporaryName: randomTemporaryName)
}

/// The seams of `writeAtomically` that tests replace to make a step fail, or to choose the names.
struct SystemCalls: Sendable {
    var fsync: @Sendable (Int32) -> Int32
    var close: @Sendable (Int32) -> Int32
    var rename: @Sendable (String, String) -> Int32

    static let system = SystemCalls(fsync: systemFsync, close: systemClose, rename: systemRename)
}

private func systemFsync(_ fd: Int32) -> Int32 { fsync(fd) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }

/// `PATH.tmp-` and 16 random hexadecimal digits: unguessable, so no one can plant anything there
/// in advance (and `O_EXCL` refuses whatever is there anyway).
func randomTemporaryName(for path: String) -> String {
    let digits = String(UInt64.random(in: .min ... .max), radix: 16)
    return "\(path).tmp-\(String(repeating: "0", count: 16 - digits.count))\(digits)"
}

func writeAtomically(
    _ bytes: [UInt8], to path: String, calls: SystemCalls, temporaryName: (String) -> String
) throws(FileError) {
    let directory = directoryOf(path)
    try makeDirectories(directory, for: path)

    // Keep the permission bits of the file being replaced, so a file an operator restricted stays so.
    var existing = stat()
    let keptMode: mode_t? = lstat(path, &existing) == 0 && existing.st_mode & S_IFMT == S_IFREG
        ? existing.st_mode & 0o777 : nil

    var temporary = ""
    var fd: Int32 = -1
    let attempts = 16
    for _ in 0..<attempts {
        temporary = temporaryName(path)
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, keptMode ?? defaultFileMode)
        if fd >= 0 { break }
        let code = errno
        // Something is at that name (perhaps planted): never touch it, take another name.
        if code == EEXIST || code == ELOOP || code == EINTR { continue }
        throw FileError(.createTemporary, path, other: temporary, .system(code))
    }
    guard fd >= 0 else { throw FileError(.createTemporary, path, .noFreeName(tried: attempts)) }

    /// Abandons the temporary file after a failed step.
    func fail(_ operation: FileError.Operation, _ code: Int32, closing: Bool) -> FileError {
        if closing { _ = calls.close(fd) }
        unlink(temporary)
        return FileError(operation, path, other: temporary, .system(code))
    }

    if let keptMode, fchmod(fd, keptMode) != 0 { throw fail(.write, errno, closing: true) }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        if count < 0 && errno == EINTR { continue }
        // A write of 0 bytes would loop for ever: treat it as the disk being full.
        guard count > 0 else { throw fail(.write, count < 0 ? errno : ENOSPC, closing: true) }
        written += count
    }
    var synced = calls.fsync(fd)
    while synced != 0 && errno == EINTR { synced = calls.fsync(fd) }
    // The data may not be on the disk: the save failed, whatever close says.
    if synced != 0 { throw fail(.sync, errno, closing: true) }
    // Not retried on EINTR: on Linux the descriptor is released whatever close returns.
    if calls.close(fd) != 0 { throw fail(.close, errno, closing: false) }
    if calls.rename(temporary, path) != 0 { throw fail(.replace, errno, closing: false) }
    try syncDirectory(directory, of: path)
}

/// Syncs `directory` so that a rename in it is on the disk.
func syncDirectory(_ directory: String, of path: String) throws(FileError) {
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(.syncDirectory, path, other: directory, .system(errno)) }
    defer { close(fd) }
    var synced = fsync(fd)
    while synced != 0 && errno == EINTR { synced = fsync(fd) }
    // EINVAL: this file system cannot sync a directory (it has nothing to sync).
    if synced != 0 && errno != EINVAL { throw FileError(.syncDirectory, path, other: directory, .system(errno)) }
}

/// The directory that holds `path`.
func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// Creates `directory` and its missing parents (mode 0755); `path` is the file they are for.
public func makeDirectories(_ directory: String, for path: String) throws(FileError) {
    var info = stat()
    if stat(directory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR { return }
    var current = directory.hasPrefix("/") ? "" : "."
    for component in directory.split(separator: "/") {
        current += "/" + component
        guard mkdir(current, 0o755) == 0 || errno == EEXIST else {
            throw FileError(.createDirectory, path, other: current, .system(errno))
        }
    }
    // EEXIST hides a file in the way; say so rather than fail later with a vaguer error.
    guard stat(directory, &info) == 0 else { throw FileError(.createDirectory, path, other: directory, .system(errno)) }
    guard info.st_mode & S_IFMT == S_IFDIR else { throw FileError(.createDirectory, path, other: directory, .system(ENOTDIR)) }
}
