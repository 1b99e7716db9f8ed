import DurableFiles
import SEC1000Protocol
import UnixClock

/// One reading as `sec1000 read` reports it: the device's values with the zero-power filter applied.
public struct FilteredReading: Sendable, Equatable {
    /// What the device sent.
    public let raw: Measurements
    /// `raw` with `invertersPower` replaced when the filter substituted it.
    public let filtered: Measurements
    public let substituted: Bool
}

extension SEC1000Client {
    /// Reads the measurements and passes the inverters power through `filter`, loading and saving
    /// the filter's cache from `cacheFile` when one is given (so one-shot runs share a cache).
    ///
    /// A cache that cannot be saved does not fail the reading: the error is returned beside it.
    public func readFiltered(
        policy: RetryPolicy, cacheFile: ZeroPowerCacheFile?, capacity: Int, maximumAge: Double,
        onFailure: (Int, SEC1000Error) -> Void = { _, _ in }
    ) async throws(SEC1000Error) -> (reading: FilteredReading, cacheError: FileError?) {
        let raw = try await readMeasurements(policy: policy, onFailure: onFailure)
        var filter = cacheFile?.load(capacity: capacity, maximumAge: maximumAge)
            ?? ZeroPowerFilter(capacity: capacity, maximumAge: maximumAge)
        let output = filter.filter(raw.invertersPower, at: unixTime())
        var cacheError: FileError?
        if let cacheFile {
            do { try cacheFile.save(filter) } catch { cacheError = error }
        }
        var filtered = raw
        filtered.invertersPower = output.value
        return (FilteredReading(raw: raw, filtered: filtered, substituted: output.substituted), cacheError)
    }
}
