import HTTPTypes
import HummingbirdCore
import JSONText
import Locking
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixClock

/// How the HTTP face listens and what it tolerates from clients.
public struct HTTPFaceConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Open HTTP connections at most; beyond it the face stops accepting (the kernel's backlog
    /// holds newcomers), so hostile clients cannot take the descriptors the Modbus server needs.
    public var maxConnections: Int = 64
    /// The longest a request head may take to arrive, from the connection's start or the end of
    /// the previous response (slow-header clients).
    public var headDeadline: Duration = .seconds(10)
    /// Connections with no complete request for this long are closed.
    public var idleTimeout: Duration = .seconds(60)
    /// Series that other faces add to /metrics (the MQTT face's connection), read at each scrape.
    public var extraMetrics: (@Sendable () -> [ExtraMetric])?

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// `sec1000 bridge --http`: metrics, health, JSON status and the status page, read-only.
///
/// HummingbirdCore's HTTP/1 server on SwiftNIO with an event loop thread of its own: sockets,
/// parsing and limits are handled there, off the cooperative pool and off the Modbus server's
/// thread. Responses are rendered in a task per connection from copies of the device snapshots
/// (one lock each, held for a copy), so no request waits for a poll or a Modbus request, nor they
/// for it. Hummingbird's application layer (router, middleware, a date cache that formats through
/// Foundation's calendar every second) is left out: the face has six fixed routes, and what it
/// does not run costs no memory (Docs/performance.md).
public struct HTTPFaceService: Service {
    public let source: FaceSource
    public let history: PowerHistory
    public let configuration: HTTPFaceConfiguration
    let logger: Logger
    private let boundPort = Locked<Int?>(nil)

    public init(source: FaceSource, history: PowerHistory, configuration: HTTPFaceConfiguration, logger: Logger) {
        self.source = source
        self.history = history
        self.configuration = configuration
        self.logger = logger
    }

    /// The port bound, once the server is running (the configured one, or the kernel's pick for 0).
    public var port: Int? { boundPort.withLock { $0 } }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = configuration
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .notice)
        let responder = FaceResponder(source: source, history: history, extraMetrics: configuration.extraMetrics)
        let server = try HTTPServerBuilder.http1(configuration: .init(
            additionalChannelHandlers: [
                RequestGuard(headDeadline: .init(configuration.headDeadline), maxBody: 64 * 1024),
            ],
            idleTimeout: .init(configuration.idleTimeout))
        ).buildServer(
            configuration: ServerConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections, logger: serverLogger)),
            eventLoopGroup: group,
            logger: serverLogger,
            responder: { request, writer, _ in
                let response = responder.respond(to: request, unixNow: unixTime())
                try await writer.write(response: response.head, body: response.body)
            },
            onServerRunning: { [boundPort, logger] channel in
                let port = channel.localAddress?.port ?? configuration.port
                boundPort.withLock { $0 = port }
                logger.info("HTTP face listening", metadata: ["address": "\(configuration.host):\(port)"])
            })
        do {
            try await server.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}

/// The routes: GET (or HEAD) only, everything else 405; unknown paths 404.
struct FaceResponder: Sendable {
    let source: FaceSource
    let history: PowerHistory
    var extraMetrics: (@Sendable () -> [ExtraMetric])?
    let metrics = Metrics()

    func respond(to request: Request, unixNow: Double) -> Response {
        let start = ContinuousClock.now
        var response = route(request, unixNow: unixNow)
        // HEAD keeps the length GET would send (setting an empty body would zero it), on every
        // path, and no body (NIO's encoder drops one too; the face does not rely on it).
        if request.method == .head { response = response.createHeadResponse() }
        // W3C Server Timing: the time the answer took to make, without the network (a browser's
        // developer tools show it; the benchmark reads it as the render time).
        let taken = (ContinuousClock.now - start).components
        let micros = taken.seconds * 1_000_000 + taken.attoseconds / 1_000_000_000_000
        response.headers[.serverTiming] = "render;dur=\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"
        response.headers[.date] = HTTPDate.format(unixSeconds: Int(unixNow))
        response.headers[.server] = "sec1000"
        return response
    }

    private func route(_ request: Request, unixNow: Double) -> Response {
        let path = request.uri.path
        let known = ["/", "/metrics", "/health", "/health/live", "/api/status", "/api/history"]
        guard known.contains(path) else {
            return text(.notFound, "not found: the face serves \(known.joined(separator: ", "))\n")
        }
        guard request.method == .get || request.method == .head else {
            var response = text(.methodNotAllowed, "method not allowed: the face is read-only (GET, HEAD)\n")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        var response: Response
        switch path {
        case "/metrics":
            response = body(.ok, metrics.render(source, extra: extraMetrics?() ?? []), type: "text/plain; version=0.0.4; charset=utf-8")
        case "/health/live":
            response = text(.ok, "ok\n")
        case "/health":
            let health = Health(source)
            response = json(health.healthy ? .ok : .serviceUnavailable, health.json)
        case "/api/status":
            response = body(.ok, StatusReport.render(source, unixNow: unixNow), type: "application/json")
        case "/api/history":
            response = json(.ok, HistoryReport(source: source, history: history).json)
        default:
            response = body(.ok, Array(StatusPage.html.utf8), type: "text/html; charset=utf-8")
            // The page may talk to this server only: no CDN, font or script from elsewhere loads.
            response.headers[.contentSecurityPolicy] =
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"
        }
        response.headers[.cacheControl] = "no-store"
        response.headers[.xContentTypeOptions] = "nosniff"
        return response
    }

    func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        body(status, Array(message.utf8), type: "text/plain; charset=utf-8")
    }

    func json(_ status: HTTPResponse.Status, _ value: JSON) -> Response {
        body(status, ByteBuffer(string: value.text), type: "application/json")
    }

    func body(_ status: HTTPResponse.Status, _ bytes: [UInt8], type: String) -> Response {
        body(status, ByteBuffer(bytes: bytes), type: type)
    }

    func body(_ status: HTTPResponse.Status, _ buffer: ByteBuffer, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.contentLength] = "\(buffer.readableBytes)"
        return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
    }
}

/// `/health`: healthy when every device has fresh data.
struct Health {
    struct Device {
        var unit: UInt8
        var fresh: Bool
        var ageSeconds: Double?
        var lastError: StatusReport.Code
    }

    var healthy: Bool
    var devices: [Device]

    init(_ source: FaceSource, now: ContinuousClock.Instant = .now) {
        devices = source.states.map { state in
            let snapshot = state.current
            return Device(
                unit: state.unit, fresh: snapshot.sample.map { state.isFresh($0, at: now) } ?? false,
                ageSeconds: snapshot.sample.map { (now - $0.taken).seconds },
                lastError: .init(code: snapshot.lastError, meaning: Names.error(snapshot.lastError)))
        }
        healthy = devices.allSatisfy(\.fresh)
    }

    var json: JSON {
        .sortedObject([
            ("healthy", .bool(healthy)),
            ("devices", .array(devices.map { device in
                .sortedObject([
                    ("unit", .integer(device.unit)), ("fresh", .bool(device.fresh)),
                    ("ageSeconds", device.ageSeconds.map(JSON.double)), ("lastError", device.lastError.json),
                ])
            })),
        ])
    }
}

/// `/api/history`: each device's last hour of grid and inverters power, oldest first.
struct HistoryReport {
    struct Device {
        var unit: UInt8
        /// Unix seconds, grid power W, inverters power W, one array each.
        var unixTime: [UInt32]
        var gridPower: [Int32]
        var invertersPower: [Int32]
    }

    var spacingSeconds: Double
    var devices: [Device]

    init(source: FaceSource, history: PowerHistory) {
        spacingSeconds = history.spacing.seconds
        devices = source.states.map { state in
            let points = history.points(unit: state.unit)
            return Device(
                unit: state.unit, unixTime: points.map(\.unixTime), gridPower: points.map(\.gridPower),
                invertersPower: points.map(\.invertersPower))
        }
    }

    var json: JSON {
        .sortedObject([
            ("spacingSeconds", .double(spacingSeconds)),
            ("devices", .array(devices.map { device in
                .sortedObject([
                    ("unit", .integer(device.unit)), ("unixTime", .array(device.unixTime.map(JSON.integer))),
                    ("gridPower", .array(device.gridPower.map(JSON.integer))),
                    ("invertersPower", .array(device.invertersPower.map(JSON.integer))),
                ])
            })),
        ])
    }
}

extension HTTPField.Name {
    static let serverTiming = HTTPField.Name("Server-Timing")!
}
