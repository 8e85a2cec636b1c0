// The HTTP server of the dashboard, /metrics and /healthz, on Hummingbird; started and stopped from a plain thread.

import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Why the dashboard's HTTP server could not start.
public struct DashboardServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Who may read the dashboard.
///
/// The seam for an access token: with ``bearerToken(_:)`` every route but /healthz and the
/// static script and style wants
/// `Authorization: Bearer TOKEN` or, for a browser's first request and its event stream (an
/// `EventSource` cannot set headers), `?token=TOKEN`. The CLI asks for a token when keys are set
/// or `--http-token` is given; an ``open`` server binds beyond loopback only with `--insecure`.
public enum DashboardAccess: Sendable, Equatable {
    case open
    case bearerToken(String)

    func allows(_ request: Request) -> Bool {
        switch self {
        case .open:
            return true
        case .bearerToken(let token):
            if request.headers[.authorization] == "Bearer \(token)" { return true }
            return request.uri.queryParameters.get("token") == token
        }
    }
}

/// Serves the dashboard (`/`, its script and style, `/api/state`, the live stream `/events`),
/// `/metrics` (Prometheus text) and `/healthz`, read-only: GET and HEAD only.
///
/// Hummingbird runs on SwiftNIO's event loops and Swift concurrency; the broker's thread only
/// hands it values through ``DashboardState`` (a mutex), so no ZeroMQ socket is ever touched
/// from there. ``init(host:port:state:access:logger:)`` returns once the server listens (or throws
/// why it cannot); ``stop()`` ends the page streams and waits for the server to close.
public final class DashboardServer: Sendable {
    /// The content type of the Prometheus text format.
    public static let expositionContentType = "text/plain; version=0.0.4; charset=utf-8"
    /// How long starting or stopping may take before it is reported as failed.
    static let lifecycleTimeout: DispatchTimeInterval = .seconds(10)

    public let state: DashboardState
    /// The address listened on, as given (empty or `*`: every interface).
    public let host: String
    /// The port listened on (the one chosen by the system when `port` was 0).
    public let boundPort: Int
    private let task: Task<Void, Never>
    private let finished: DispatchSemaphore
    private let stopping = Mutex(false)

    /// Listens on `host` (an address; empty or `*` for every interface) and `port` (0: any free port).
    public init(
        host: String, port: Int, state: DashboardState, access: DashboardAccess = .open,
        logger: Logger = Logger(label: "lancompute.dashboard")
    ) throws {
        guard (0...65535).contains(port) else {
            throw DashboardServerError(description: "port \(port) is out of range 0-65535")
        }
        let listening = StartupSignal()
        let finished = DispatchSemaphore(value: 0)
        let address = host.isEmpty || host == "*" ? "0.0.0.0" : host
        // Hummingbird logs each connection cut by ``stop()`` as an error; what matters (not
        // listening) is thrown from here instead, so its own log only shows what is critical.
        var quiet = logger
        quiet.logLevel = .critical
        let application = Application(
            router: Self.router(state: state, access: access),
            configuration: .init(address: .hostname(address, port: port), serverName: nil),
            onServerRunning: { channel in listening.report(.success(channel.localAddress?.port ?? 0)) },
            logger: quiet)
        let executor = DedicatedThreadExecutor(name: "lancompute-http")
        task = Task.detached(executorPreference: executor) {
            defer {
                executor.shutDown()
                finished.signal()
            }
            do {
                // `run`, not `runService`: the CLI handles SIGINT and SIGTERM itself, and stops the server.
                try await application.run()
                listening.report(.failure(DashboardServerError(description: "the HTTP server stopped before it listened")))
            } catch {
                listening.report(.failure(DashboardServerError(description: "cannot listen on \(host):\(port): \(error)")))
            }
        }
        self.finished = finished
        self.state = state
        self.host = host
        switch listening.wait(timeout: Self.lifecycleTimeout) {
        case .success(let port)?:
            boundPort = port
        case .failure(let error)?:
            finished.wait()
            throw error
        case nil:
            task.cancel()
            throw DashboardServerError(description: "the HTTP server did not start listening on \(host):\(port) in time")
        }
    }

    /// `HOST:PORT` as listened on, IPv6 addresses in brackets: what the CLI prints.
    public var endpoint: String {
        let shown = host.isEmpty || host == "*" ? "0.0.0.0" : host
        return "\(shown.contains(":") ? "[\(shown)]" : shown):\(boundPort)"
    }

    /// The server for `--http HOST:PORT` (and `--metrics-http`), with the rule every HTTP bind
    /// follows: a server reachable from the network serves without encryption or a token (see
    /// ``DashboardAccess``), so anything but loopback needs `insecure`. Errors carry LC2007
    /// (not `HOST:PORT`, or not served) or LC2005 (reachable from the network without `--insecure`).
    public static func start(
        address: String, insecure: Bool, state: DashboardState, access: DashboardAccess = .open, logger: Logger
    ) throws(RuntimeError) -> DashboardServer {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(hostAndPort: address)
        } catch {
            throw RuntimeError(.metricsHTTP, "--http takes HOST:PORT, got \(address): \(error.problem)")
        }
        if !endpoint.isLoopback, !insecure, access == .open {
            throw RuntimeError(.unencryptedExposure, "--http \(address) is reachable from the network and wants no token: anyone who reaches it could read the page and /metrics; pass --keys DIR (the server then wants a token it prints) or --http-token, bind 127.0.0.1, or pass --insecure on a network you trust")
        }
        do {
            return try DashboardServer(
                host: endpoint.host == "*" ? "" : endpoint.host ?? "", port: endpoint.port ?? 0, state: state, access: access, logger: logger)
        } catch {
            throw RuntimeError(.metricsHTTP, "cannot serve HTTP on \(address): \(error)")
        }
    }

    /// Replaces the text served at /metrics; the broker calls it once per interval.
    public func update(exposition text: String) {
        state.setExposition(text)
    }

    /// Ends the page streams, stops listening and waits for the server to close; later calls do nothing.
    public func stop() {
        let first = stopping.withLock { stopping in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        // The broker's last messages (pipeline finished, stopping) are in the streams' buffers:
        // give them a moment to reach the pages before the connections are cut.
        if state.finishStreams() > 0 { Thread.sleep(forTimeInterval: 0.2) }
        // Cancelling closes the listener and every connection at once. (Hummingbird's graceful
        // shutdown waits for idle keep-alive connections to go, which a browser may keep for minutes.)
        task.cancel()
        _ = finished.wait(timeout: .now() + Self.lifecycleTimeout)
        finished.signal()  // for a `stop` racing this one: it returns at once
    }

    deinit { stop() }

    // MARK: Routes

    /// Every route, for the server and for tests (HummingbirdTesting's `.router`).
    public static func router(state: DashboardState, access: DashboardAccess = .open) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ReadOnlyMiddleware(access: access))
        routeGetAndHead(router, "/") { _, _ in
            asset(DashboardAssets.html, type: "text/html; charset=utf-8")
        }
        routeGetAndHead(router, "/dashboard.js") { _, _ in
            asset(DashboardAssets.script, type: "text/javascript; charset=utf-8")
        }
        routeGetAndHead(router, "/dashboard.css") { _, _ in
            asset(DashboardAssets.style, type: "text/css; charset=utf-8")
        }
        routeGetAndHead(router, "/api/state") { _, _ in
            asset(state.stateJSON(), type: "application/json", cache: false)
        }
        routeGetAndHead(router, "/events") { _, _ in
            let stream = state.subscribe()
            let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                // A retry hint for the browser's EventSource when the server goes away and comes back.
                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                for await message in stream {
                    try await writer.write(ByteBuffer(string: message.serverSentEvent))
                }
                try await writer.finish(nil)
            })
        }
        routeGetAndHead(router, "/metrics") { _, _ -> Response in
            guard let text = state.exposition else {
                return plain(.notFound, "this dashboard reads a broker's feed; scrape the broker's own /metrics (lancompute broker --http)\n")
            }
            return asset(text, type: expositionContentType, cache: false)
        }
        routeGetAndHead(router, "/healthz") { _, _ in
            plain(.ok, "ok\n")
        }
        return router
    }

    /// Registers `handler` for GET and HEAD (the middleware drops HEAD's body).
    private static func routeGetAndHead(
        _ router: Router<BasicRequestContext>, _ path: RouterPath,
        _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response
    ) {
        router.get(path, use: handler)
        router.head(path, use: handler)
    }

    private static func asset(_ text: String, type: String, cache: Bool = true) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: type, .cacheControl: cache ? "max-age=60" : "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Refuses every method but GET and HEAD (the server changes nothing), answers HEAD as GET
/// without the body, and checks ``DashboardAccess``.
struct ReadOnlyMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: DashboardAccess

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let isHead = request.method == .head
        guard request.method == .get || isHead else {
            var response = DashboardServer.plain(.methodNotAllowed, "read-only: only GET and HEAD are served\n")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        // Health and the static assets tell nothing about the pipeline: a page asked for with
        // `?token=` loads its script and style by relative paths, without the token.
        let public_ = ["/healthz", "/dashboard.js", "/dashboard.css"].contains(request.uri.path)
        if !public_, !access.allows(request) {
            var response = DashboardServer.plain(.unauthorized, "an access token is required\n")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            response = DashboardServer.plain(.notFound, "not found; try /, /metrics or /healthz\n")
        }
        guard isHead else { return response }
        // HEAD is GET without the body.
        var headResponse = response
        headResponse.body = .init()
        return headResponse
    }
}

/// Carries the outcome of starting the server from its task to the thread that waits for it.
private final class StartupSignal: Sendable {
    private let outcome = Mutex<Result<Int, DashboardServerError>?>(nil)
    private let semaphore = DispatchSemaphore(value: 0)

    /// The first report wins; later ones (the server ending after it listened) are ignored.
    func report(_ result: Result<Int, DashboardServerError>) {
        let first = outcome.withLock { outcome in
            guard outcome == nil else { return false }
            outcome = result
            return true
        }
        if first { semaphore.signal() }
    }

    func wait(timeout: DispatchTimeInterval) -> Result<Int, DashboardServerError>? {
        guard semaphore.wait(timeout: .now() + timeout) == .success else { return nil }
        return outcome.withLock { $0 }
    }
}
