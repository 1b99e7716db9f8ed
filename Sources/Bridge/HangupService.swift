#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ServiceLifecycle
import UnixSignals

/// Takes SIGHUP for the whole life of the bridge, so that it never ends the process (its default
/// action, which skips the final save of the energy counters), and hands each one to `onHangup`.
///
/// Trapping SIGHUP sets its disposition to "ignore" for good, so one that arrives during shutdown,
/// after this service has ended, is ignored too.
public struct HangupService: Service {
    private let onHangup: @Sendable () async -> Void

    public init(onHangup: @escaping @Sendable () async -> Void) { self.onHangup = onHangup }

    /// Ignores SIGHUP from now until the service traps it: one that arrives while the bridge starts
    /// must not end it either.
    public static func ignoreUntilRunning() {
        signal(SIGHUP, SIG_IGN)
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups { await onHangup() }
        }
    }
}

/// A daemon writes its log to standard error, which may be a pipe whose reader has gone (a closed
/// terminal, a crashed log collector). With SIGPIPE ignored such a write fails with EPIPE and the
/// log line is lost; with the default action the process would die without its final save.
public func ignoreBrokenPipes() {
    signal(SIGPIPE, SIG_IGN)
}
