import Bridge
import Logging
import ServiceLifecycle
import Sockets

/// The HTTP face of a bridge, assembled: the server and the history sampler, to run beside the
/// bridge's own services.
public struct HTTPFaceRuntime: Sendable {
    public let server: HTTPFaceService
    public let historyService: HistoryService

    /// `configure` changes the limits (tests shorten them).
    public init(
        runtime: BridgeRuntime, address: SocketAddress, logger: Logger, configure: (inout HTTPFaceConfiguration) -> Void = { _ in }
    ) {
        var configuration = HTTPFaceConfiguration(host: address.host, port: Int(address.port))
        configure(&configuration)
        let history = PowerHistory(units: runtime.states.map(\.unit), spacing: runtime.configuration.interval)
        server = HTTPFaceService(source: FaceSource(runtime: runtime), history: history, configuration: configuration, logger: logger)
        historyService = HistoryService(history: history, readings: runtime.readings)
    }

    public var services: [any Service] { [historyService, server] }

    /// Where a browser on this host finds the status page.
    public var url: String {
        let host = server.configuration.host
        let shown = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(server.port ?? server.configuration.port)/"
    }
}
