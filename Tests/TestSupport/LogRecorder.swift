import InMemoryLogging
import Logging

/// Keeps every log message with its metadata (swift-log's in-memory handler, all levels), for
/// tests of what the code logs. A message reads `<level> <message> key=value ...`, keys sorted.
public final class LogRecorder: Sendable {
    private let handler: InMemoryLogHandler = {
        var handler = InMemoryLogHandler()
        handler.logLevel = .trace
        return handler
    }()

    public init() {}

    public var messages: [String] {
        handler.entries.map { entry in
            let rendered = entry.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(entry.level) \(entry.message) \(rendered)"
        }
    }

    public func contains(_ text: String) -> Bool { messages.contains { $0.contains(text) } }

    /// A logger whose handlers (one per copy) all record here.
    public var logger: Logger {
        Logger(label: "recorded") { [handler] _ in handler }
    }
}
