// `lancompute dashboard EP`: serves the live web dashboard of a broker from any machine that can read its feed.

import ArgumentParser
import Foundation
import LANCompute
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve a running pipeline's live web dashboard, read from the broker's events feed.",
        discussion: """
            Subscribes to the feed at ENDPOINT, asks the broker's dispatch endpoint for the topology \
            (mmi.topology), and serves the page at --http (default \(HTTPOption.defaultAddress)) until \
            Ctrl-C. /metrics is served by the broker itself (lancompute broker --http).
            """)

    @Argument(help: "The broker's events (PUB) endpoint.")
    var endpoint: String = "tcp://127.0.0.1:5556"

    @Option(help: "The broker's dispatch endpoint, for the topology (default: ENDPOINT's host, port 5555).")
    var dispatch: String?

    @Option(name: .customLong("http"), help: ArgumentHelp("Where to serve the page.", valueName: "host:port"))
    var http: String = HTTPOption.defaultAddress

    @Flag(help: "Allow serving on a non-loopback address without a token (HTTP has no encryption).")
    var insecure = false

    @OptionGroup var keys: ClientKeyOptions
    @OptionGroup var token: HTTPTokenOptions
    @OptionGroup var logging: LoggingOptions

    mutating func validate() throws {
        endpoint = Endpoint.expandingShorthand(endpoint, defaultPort: 5556)
        try checkEndpoint(endpoint, option: "ENDPOINT")
        checkResolves(endpoint)
        if let dispatch { try checkEndpoint(dispatch, option: "--dispatch") }
        if dispatch == nil, RemoteDashboardFeed.defaultDispatch(forEvents: endpoint) == nil {
            throw ValidationError("cannot tell the dispatch endpoint from \(endpoint): give --dispatch")
        }
    }

    func run() throws {
        logging.bootstrap(default: .warning)
        let stop = StopRequest()
        stop.watch(signals: [SIGINT, SIGTERM])
        let state = DashboardState(origin: endpoint)
        let server: DashboardServer
        let access = try token.access(secured: keys.curve != nil)
        do {
            server = try DashboardServer.start(
                address: http, insecure: insecure, state: state, access: access, logger: Logger(label: "lancompute.dashboard"))
        } catch {
            fail(error)
        }
        defer { server.stop() }
        FileHandle.standardError.write(Data("dashboard \(access.pageURL(server.endpoint)) reading \(endpoint)\n".utf8))
        let feed = RemoteDashboardFeed(
            eventsEndpoint: endpoint, dispatchEndpoint: dispatch ?? RemoteDashboardFeed.defaultDispatch(forEvents: endpoint) ?? "",
            state: state, curve: keys.curve)
        try feed.run(shouldStop: { stop.isRequested })
    }
}

/// `--http` with or without a value: `run --http` alone serves on ``defaultAddress``.
enum HTTPOption {
    static let defaultAddress = "127.0.0.1:8080"

    /// The arguments with ``defaultAddress`` put after a bare `--http` (one followed by nothing, by
    /// another option, or by a word that is no `HOST:PORT`, such as the topology file), so the
    /// parser, which wants a value, gets one. Nothing after `--` is touched.
    static func expandingBareHTTP(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            result.append(argument)
            index += 1
            if argument == "--" {
                result += arguments[index...]
                break
            }
            guard argument == "--http" else { continue }
            let next = index < arguments.count ? arguments[index] : nil
            if next.map(looksLikeAddress) != true { result.append(defaultAddress) }
        }
        return result
    }

    /// `HOST:PORT`, `[V6]:PORT` or `:PORT`: a colon followed by digits only, and no slash.
    static func looksLikeAddress(_ word: String) -> Bool {
        guard !word.hasPrefix("-"), !word.contains("/"), let colon = word.lastIndex(of: ":") else { return false }
        let port = word[word.index(after: colon)...]
        return !port.isEmpty && port.allSatisfy(\.isNumber)
    }
}

/// `--http-token`: the token the dashboard, `/api/state`, `/events` and `/metrics` want.
struct HTTPTokenOptions: ParsableArguments {
    @Option(name: .customLong("http-token"), help: ArgumentHelp(
        "Require this token on the HTTP server (the page, /api/state, /events, /metrics): the token itself, or a file holding it.",
        discussion: "With keys (--keys, --key), a token is made up and printed when none is given.",
        valueName: "token|file"))
    var httpToken: String?

    func validate() throws {
        if let httpToken { _ = try Self.read(httpToken) }
    }

    /// Who may read: the token given; else, when `secured`, one made up now; else anyone.
    func access(secured: Bool) throws -> DashboardAccess {
        if let httpToken { return .bearerToken(try Self.read(httpToken)) }
        guard secured else { return .open }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        return .bearerToken(token)
    }

    /// A value naming a readable file is the file's first line; anything else is the token itself.
    static func read(_ value: String) throws -> String {
        var token = value
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: value, isDirectory: &isDirectory), !isDirectory.boolValue {
            guard let text = try? String(contentsOfFile: value, encoding: .utf8) else {
                throw ValidationError("--http-token: cannot read \(value)")
            }
            token = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        }
        token = token.trimmingCharacters(in: .whitespaces)
        guard token.count >= 16, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.~".contains($0)) }) else {
            throw ValidationError("--http-token: a token is at least 16 characters of letters, digits and -_.~ (got \(token.count) characters\(value == token ? "" : " from \(value)")); make one with: head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
        }
        return token
    }
}

extension DashboardAccess {
    /// The page's address to print: with the token in the query when one is required.
    func pageURL(_ hostAndPort: String) -> String {
        switch self {
        case .open: "http://\(hostAndPort)/"
        case .bearerToken(let token): "http://\(hostAndPort)/?token=\(token)"
        }
    }

    /// How to scrape /metrics, for the ready line.
    func metricsNote(_ hostAndPort: String) -> String {
        switch self {
        case .open: "metrics http://\(hostAndPort)/metrics"
        case .bearerToken: "metrics http://\(hostAndPort)/metrics (Authorization: Bearer, the same token)"
        }
    }
}
