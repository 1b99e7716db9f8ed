#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of a regular file of at most `limit` bytes; `nil` when nothing is at `path`.
///
/// Anything else that keeps the file from being read is an error, not an empty file: a directory
/// or other non-regular file, a file it has no permission to read, a file larger than `limit`, an
/// I/O error. Symbolic links at `path` are followed, as an operator may link a file into place.
public func readSmallFile(_ path: String, limit: Int = 65536) throws(FileError) -> [UInt8]? {
    // O_NONBLOCK: a FIFO at the path must not hang the open; it is refused below.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    guard fd >= 0 else {
        if errno == ENOENT { return nil }
        throw FileError(.read, path, .system(errno))
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw FileError(.read, path, .system(errno)) }
    guard info.st_mode & S_IFMT == S_IFREG else { throw FileError(.read, path, .notARegularFile(fileKind(info.st_mode))) }
    guard info.st_size <= limit else { throw FileError(.read, path, .tooLarge(limit: limit)) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 4096) }
        if count < 0 && errno == EINTR { continue }
        if count < 0 { throw FileError(.read, path, .system(errno)) }
        if count == 0 { return bytes }
        bytes += buffer[0..<count]
        // It grew while being read.
        guard bytes.count <= limit else { throw FileError(.read, path, .tooLarge(limit: limit)) }
    }
}

/// Throws unless `path` is missing or a regular file (symbolic links followed): a check to make
/// before creating anything beside it.
public func requireRegularFileIfPresent(_ path: String) throws(FileError) {
    var info = stat()
    guard stat(path, &info) == 0 else {
        if errno == ENOENT { return }
        throw FileError(.read, path, .system(errno))
    }
    guard info.st_mode & S_IFMT == S_IFREG else { throw FileError(.read, path, .notARegularFile(fileKind(info.st_mode))) }
}

/// Moves `path` to `PATH.TAG-<UTC time>` (`-2`, `-3`, ... when that is taken), never replacing a
/// file already there, and returns the new name. The directory is not synced: the caller's next
/// write does that.
public func setAside(_ path: String, tag: String, at time: time_t = time(nil)) throws(FileError) -> String {
    var seconds = time
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let stamp = "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T"
        + "\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    let base = "\(path).\(tag)-\(stamp)"
    let attempts = 1000
    for number in 1...attempts {
        let candidate = number == 1 ? base : "\(base)-\(number)"
        // link() fails with EEXIST instead of replacing: the atomic "rename unless taken".
        if link(path, candidate) == 0 {
            guard unlink(path) == 0 else {
                let code = errno
                unlink(candidate)
                throw FileError(.setAside, path, other: candidate, .system(code))
            }
            return candidate
        }
        let code = errno
        if code == EEXIST { continue }
        // File systems without hard links: check, then rename. The caller holds the file's lock,
        // so only someone able to write the directory anyway could slip in between.
        guard code == EPERM || code == EOPNOTSUPP || code == EMLINK || code == ENOSYS else {
            throw FileError(.setAside, path, other: candidate, .system(code))
        }
        var info = stat()
        if lstat(candidate, &info) == 0 { continue }
        guard errno == ENOENT else { throw FileError(.setAside, path, other: candidate, .system(errno)) }
        guard rename(path, candidate) == 0 else { throw FileError(.setAside, path, other: candidate, .system(errno)) }
        return candidate
    }
    throw FileError(.setAside, path, other: base, .noFreeName(tried: attempts))
}
