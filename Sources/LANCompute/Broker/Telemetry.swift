// The broker's link to the metrics and events layer: counters, the PUB feed, the HTTP exposition.

import Logging
import ZeroMQ

/// Confined to the broker thread.
final class Telemetry {
    let topology: Topology
    let logger: Logger
    private(set) var feedSocket: Socket?
    private(set) var metricsHTTPEndpoint: String?

    init(topology: Topology, logger: Logger) {
        self.topology = topology
        self.logger = logger
    }

    /// Binds the events feed (and the HTTP exposition); returns the bound events endpoint.
    func start(configuration: BrokerConfiguration, context: Context) throws(BrokerError) -> String? {
        nil
    }

    func handleSubscriptions() {}
    func brokerStarted(endpoints: BrokerEndpoints) {}
    func brokerStopping(summary: RunSummary) {}
    func publishMetrics(dispatcher: Dispatcher, now: ContinuousClock.Instant) {}
    func backpressure(stage: String, queued: Int, limit: Int, active: Bool) {}
    func protocolError(peer: String, reason: String) {}
    func deadLettered(stage: String, itemID: UInt64, attempts: Int, reason: String) {}
    func workerExpired(peer: String, stage: String, reason: String, requeued: Int) {}
    func nodeJoined(node: String, host: String, capabilities: Capabilities) {}
    func nodeLeft(node: String, reason: String) {}
    func itemReceived(stage: String) {}
    func itemCompleted(stage: String, latency: Duration) {}
    func itemFailed(stage: String) {}
    func itemRetried(stage: String) {}
    func itemDeadLettered(stage: String) {}
}
