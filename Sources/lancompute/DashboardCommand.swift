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

    @Flag(help: "Allow serving on a non-loopback address (the page has no encryption and no token, keys or not).")
    var insecure = false

    @OptionGroup var keys: ClientKeyOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        try checkEndpoint(endpoint, option: "ENDPOINT")
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
        do {
            server = try DashboardServer.start(
                address: http, insecure: insecure, state: state, logger: Logger(label: "lancompute.dashboard"))
        } catch {
            fail(error)
        }
        defer { server.stop() }
        FileHandle.standardError.write(Data("dashboard http://\(server.endpoint)/ reading \(endpoint)\n".utf8))
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
