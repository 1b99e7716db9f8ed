#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Locking

/// An exclusive `flock` on a lock file, held until `release()` or until the process ends.
///
/// The lock file is separate from the file it guards because that file is replaced by renames: a
/// lock on it would stay with the old inode, and a second process opening the new file would get
/// a lock of its own. The lock file is never renamed or removed (removing it would let two
/// processes lock two different inodes of one name). It is created with mode 0600, so that only
/// its owner (and root) can open it and therefore hold the lock.
public final class FileLock: Sendable {
    /// The lock file.
    public let path: String
    private let descriptor: Locked<Int32>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Locked(descriptor)
    }

    /// Takes the lock on `lockPath` (created if missing, with its directories) for `path`, without
    /// waiting: a lock held elsewhere throws `FileError` with reason `.heldByAnotherProcess`.
    public static func acquire(_ lockPath: String, for path: String) throws(FileError) -> FileLock {
        try makeDirectories(directoryOf(lockPath), for: path)
        // O_NOFOLLOW: a link planted at the lock's name must not make us create or open a file elsewhere.
        let fd = open(lockPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0o600)
        guard fd >= 0 else { throw FileError(.lock, path, other: lockPath, .system(errno)) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw FileError(.lock, path, other: lockPath, .notARegularFile(fileKind(info.st_mode)))
        }
        var locked = flock(fd, LOCK_EX | LOCK_NB)
        while locked != 0 && errno == EINTR { locked = flock(fd, LOCK_EX | LOCK_NB) }
        guard locked == 0 else {
            let code = errno
            close(fd)
            throw FileError(.lock, path, other: lockPath, code == EWOULDBLOCK ? .heldByAnotherProcess : .system(code))
        }
        return FileLock(path: lockPath, descriptor: fd)
    }

    /// Whether the lock is still held by this object.
    public var isHeld: Bool { descriptor.withLock { $0 >= 0 } }

    /// Lets the lock go (closing the descriptor releases it); later calls do nothing.
    public func release() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            // Unlocked first: a child forked meanwhile holds a copy of the descriptor until its
            // exec, and the lock would live on in that copy after our close.
            flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}
