#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file operation that failed: which step, on which file, why, and what to do about it.
public struct FileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The step that failed, as it reads after "cannot".
    public enum Operation: String, Sendable, Equatable {
        case createDirectory = "create the directory of"
        case createTemporary = "create a temporary file beside"
        case write = "write"
        case sync = "sync"
        case close = "close"
        case replace = "replace"
        case syncDirectory = "sync the directory of"
        case read = "read"
        case lock = "lock"
        case setAside = "set aside"
    }

    public enum Reason: Sendable, Equatable {
        /// A system call failed with this errno.
        case system(Int32)
        /// The path exists but is not a regular file (a directory, a FIFO, ...).
        case notARegularFile(String)
        /// The file is larger than a small file may be.
        case tooLarge(limit: Int)
        /// `flock` found the lock taken.
        case heldByAnotherProcess
        /// Every candidate name was taken.
        case noFreeName(tried: Int)
    }

    public let operation: Operation
    /// The file the caller asked about.
    public let path: String
    /// The other file involved, when there is one: the directory, the temporary file, the lock file.
    public let other: String?
    public let reason: Reason

    public init(_ operation: Operation, _ path: String, other: String? = nil, _ reason: Reason) {
        self.operation = operation
        self.path = path
        self.other = other
        self.reason = reason
    }

    /// The errno, when a system call failed.
    public var errno: Int32? {
        if case .system(let code) = reason { return code }
        return nil
    }

    public var description: String {
        "cannot \(operation.rawValue) \(path)\(other.map { " (\($0))" } ?? ""): \(explanation)"
    }

    private var explanation: String {
        switch reason {
        case .system(let code):
            let text = String(cString: strerror(code))
            return Self.advice(code).map { "\(text): \($0)" } ?? text
        case .notARegularFile(let kind): return "it is \(kind), not a regular file: give the path of a file"
        case .tooLarge(let limit): return "it is larger than \(limit) bytes, so it is not the small file expected here"
        case .heldByAnotherProcess: return "another process holds the lock"
        case .noFreeName(let tried): return "\(tried) names were tried and all were taken: remove old copies"
        }
    }

    private static func advice(_ code: Int32) -> String? {
        switch code {
        case EACCES, EPERM: "check the owner and permissions of the file and of its directory"
        case ENOSPC, EDQUOT: "the file system is full: free some space"
        case EROFS: "the file system is mounted read-only"
        case EISDIR: "it is a directory: give the path of a file"
        case ENOTDIR: "a part of the path is a file, not a directory"
        case ENOENT: "a directory on the path does not exist"
        case ELOOP: "a symbolic link is in the way, and it is not followed"
        case EIO: "the storage reported an I/O error: check the disk"
        default: nil
        }
    }
}

/// What `st_mode` says a path is, for messages.
func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: "a directory"
    case S_IFLNK: "a symbolic link"
    case S_IFIFO: "a FIFO"
    case S_IFSOCK: "a socket"
    case S_IFCHR: "a character device"
    case S_IFBLK: "a block device"
    default: "not a regular file"
    }
}
