#if canImport(Glibc)
internal import CSocketCalls
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Every descriptor is created close-on-exec: a child process (a program that embeds the bridge
// and runs a script, a test that runs mbpoll) would otherwise inherit the device connections and
// the listening socket, and a connection the parent closed would stay open until the child exits.
// On Linux the flag is set atomically, so a fork on another thread cannot slip in between.

/// A new TCP socket of `family`, close-on-exec; -1 and `errno` on failure.
func newStreamSocket(family: Int32) -> Int32 {
    #if canImport(Glibc)
    return socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    #else
    return closingOnExec(socket(family, SOCK_STREAM, 0))
    #endif
}

/// Accepts from the listening socket `fd`: a non-blocking, close-on-exec descriptor, or -1.
func acceptConnection(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
    #else
    let accepted = closingOnExec(accept(fd, nil, nil))
    guard accepted >= 0, setNonBlocking(accepted) else {
        if accepted >= 0 { close(accepted) }
        return -1
    }
    return accepted
    #endif
}

/// A pipe whose two ends are close-on-exec; `false` and `errno` on failure.
func newPipe(_ fds: inout [Int32]) -> Bool {
    #if canImport(Glibc)
    return pipe2(&fds, O_CLOEXEC) == 0
    #else
    guard pipe(&fds) == 0 else { return false }
    _ = closingOnExec(fds[0])
    _ = closingOnExec(fds[1])
    return true
    #endif
}

#if !canImport(Glibc)
private func closingOnExec(_ fd: Int32) -> Int32 {
    if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return fd
}
#endif
