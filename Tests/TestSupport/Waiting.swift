import Testing

/// The one wait of the tests: checks `condition` every 10 ms until it holds (`true`) or `timeout`
/// passes (`false`). For state that offers no event to wait on; never a sleep as an assertion.
/// Throws only when the task is cancelled.
private func holds(within timeout: Duration, _ condition: () async -> Bool) async throws(CancellationError) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { return false }
        do { try await Task.sleep(for: .milliseconds(10)) } catch { throw CancellationError() }
    }
    return true
}

/// Waits until `condition` holds, for at most `timeout`; past that, records an issue naming
/// `what` at the caller and throws.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async -> Bool
) async throws {
    guard try await holds(within: timeout, condition) else {
        Issue.record("timed out after \(timeout) waiting for \(what)", sourceLocation: sourceLocation)
        throw CancellationError()
    }
}

/// Whether `condition` comes to hold within `timeout` (`false` too when the task is cancelled),
/// for tests that assert on the answer themselves.
public func waitUntil(timeout: Duration = .seconds(5), _ condition: () async -> Bool) async -> Bool {
    (try? await holds(within: timeout, condition)) ?? false
}
