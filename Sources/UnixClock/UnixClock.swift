#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The wall clock in Unix seconds, with fractions: what register 207, the zero-power cache and the
/// status page show. Durations and deadlines use `ContinuousClock` instead, which never jumps.
public func unixTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
