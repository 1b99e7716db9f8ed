#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's descriptor limits (RLIMIT_NOFILE); `Int.max` stands for "unlimited".
public func descriptorLimits() -> (soft: Int, hard: Int) {
    var limit = rlimit()
    guard getrlimit(resourceLimitNoFile, &limit) == 0 else { return (Int(FOPEN_MAX), Int(FOPEN_MAX)) }
    func value(_ raw: rlim_t) -> Int { raw > rlim_t(Int.max) ? Int.max : Int(raw) }
    return (value(limit.rlim_cur), value(limit.rlim_max))
}

/// Raises the soft descriptor limit to the hard one (a server that holds many connections needs
/// them, and the default soft limit is often 1024 under a hard one far above it). Returns the
/// limits in force afterwards; if raising fails, the soft limit stays what it was.
@discardableResult
public func raiseDescriptorLimit() -> (soft: Int, hard: Int) {
    var limit = rlimit()
    guard getrlimit(resourceLimitNoFile, &limit) == 0 else { return descriptorLimits() }
    if limit.rlim_cur != limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        #if canImport(Darwin)
        // macOS refuses a soft limit above OPEN_MAX.
        raised.rlim_cur = min(raised.rlim_cur, rlim_t(OPEN_MAX))
        #endif
        _ = setrlimit(resourceLimitNoFile, &raised)
    }
    return descriptorLimits()
}

#if canImport(Glibc)
private let resourceLimitNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#else
private let resourceLimitNoFile = RLIMIT_NOFILE
#endif
