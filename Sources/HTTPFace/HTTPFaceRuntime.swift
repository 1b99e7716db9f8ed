import Bridge
import Logging
import ServiceLifecycle
import Sockets

/// The HTTP face of a bridge, assembled: the server and the history sampler, to run beside the
/// bridge's own services.
public struct HTTPFaceRuntime: Sendable {
    public let server: HTTPFaceService
    public let historyService: HistoryService

    public init(runtime: BridgeRuntime, address: SocketAddress, logger: Logger) {
        var configuration = HTTPFaceConfiguration(host: address.host, port: Int(address.port))
        configuration.maxConnections = 64
        let history = PowerHistory(units: runtime.states.map(\.unit), spacing: runtime.configuration.interval)
        server = HTTPFaceService(source: FaceSource(runtime: runtime), history: history, configuration: configuration, logger: logger)
        historyService = HistoryService(history: history, states: runtime.states)
    }

    public var services: [any Service] { [historyService, server] }

    /// Where a browser on this host finds the status page.
    public var url: String {
        let host = server.configuration.host
        let shown = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(server.port ?? server.configuration.port)/"
    }
}
