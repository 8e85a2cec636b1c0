// `lancompute dashboard`: fills a DashboardState from a broker's feed and its topology from mmi.topology.

import Foundation
import Logging
import ZeroMQ

/// Reads a broker's events feed (a SUB) and asks its dispatch endpoint for the topology
/// (`mmi.topology`, an MDP client), feeding a ``DashboardState`` that a ``DashboardServer`` serves.
///
/// Both sockets are made, used and closed by the thread that calls ``run(shouldStop:)``; the
/// HTTP server only ever sees the state.
public final class RemoteDashboardFeed {
    /// How long one `mmi.topology` request waits, and how long between requests until one is answered.
    public static let topologyTimeout: Duration = .milliseconds(500)
    public static let topologyRetry: Duration = .seconds(5)

    public let eventsEndpoint: String
    public let dispatchEndpoint: String
    public let state: DashboardState
    private let logger: Logger
    private let context: Context
    private let curve: CurveSetup?

    /// `curve`: the client keys for a broker that has keys (an observer key is enough).
    public init(
        eventsEndpoint: String, dispatchEndpoint: String, state: DashboardState,
        logger: Logger = Logger(label: "lancompute.dashboard"), context: Context = .shared, curve: CurveSetup? = nil
    ) {
        self.curve = curve
        self.eventsEndpoint = eventsEndpoint
        self.dispatchEndpoint = dispatchEndpoint
        self.state = state
        self.logger = logger
        self.context = context
    }

    /// The dispatch endpoint of a broker whose events endpoint is `events`, when nobody says:
    /// the same host, on the default dispatch port 5555.
    public static func defaultDispatch(forEvents events: String) -> String? {
        guard let endpoint = try? Endpoint(parsing: events), case .tcp(let host, _) = endpoint.address, host != "*" else { return nil }
        return "tcp://\(host.contains(":") ? "[\(host)]" : host):5555"
    }

    /// Reads the feed into the state until `shouldStop` turns true (checked every 200 ms).
    public func run(shouldStop: () -> Bool) throws {
        let subscriber = try FeedSubscriber(endpoint: eventsEndpoint, context: context, curve: curve)
        defer { subscriber.close() }
        let client = try MDPClient(endpoint: dispatchEndpoint, context: context, curve: curve)
        defer { client.close() }
        let clock = ContinuousClock()
        var nextTopologyRequest = clock.now
        while !shouldStop() {
            if !state.hasGraph, clock.now >= nextTopologyRequest {
                if let topology = fetchTopology(client, shouldStop: shouldStop) {
                    state.setGraph(DashboardGraph(topology: topology))
                    logger.info("topology received", metadata: ["pipeline": "\(topology.name)"])
                } else {
                    nextTopologyRequest = clock.now + Self.topologyRetry
                }
            }
            if let message = try subscriber.next(timeout: .milliseconds(200)) {
                state.accept(topic: message.topic, json: message.json)
            }
        }
    }

    private func fetchTopology(_ client: MDPClient, shouldStop: () -> Bool) -> Topology? {
        do {
            guard let body = try client.request("mmi.topology", body: [], timeout: Self.topologyTimeout, shouldStop: shouldStop),
                  body.count == 2, body[0] == Array("200".utf8) else { return nil }
            return try JSONDecoder().decode(Topology.self, from: Data(body[1]))
        } catch {
            logger.warning("the topology could not be read", metadata: ["dispatch": "\(dispatchEndpoint)", "error": "\(error)"])
            return nil
        }
    }
}

@available(*, unavailable)
extension RemoteDashboardFeed: Sendable {}
