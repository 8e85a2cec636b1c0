// The broker's link to the metrics and events layer: counters, the PUB feed, the HTTP exposition.

import Foundation
import Logging
import ZeroMQ

/// Confined to the broker thread.
final class Telemetry {
    let topology: Topology
    let logger: Logger
    let metrics: PipelineMetrics
    private var feed: EventFeed?
    private var httpServer: DashboardServer?
    private var reporter: MetricsReporter?
    private(set) var metricsHTTPEndpoint: String?
    private var protocolErrorsPublished = 0
    private let started = Date()

    init(topology: Topology, logger: Logger) {
        self.topology = topology
        self.logger = logger
        metrics = PipelineMetrics(pipeline: topology.name, stageNames: topology.stages.map(\.name))
    }

    var feedSocket: Socket? { feed?.socket }

    /// Binds the events feed and starts the HTTP exposition; returns the bound events endpoint.
    func start(configuration: BrokerConfiguration, context: Context) throws(BrokerError) -> String? {
        var bound: String?
        if let endpoint = configuration.eventsEndpoint {
            let sockets = SocketFactory(context: context, insecure: configuration.insecure,
                                        curve: configuration.security.map { CurveSetup(server: $0.keyPair) })
            do {
                let socket = try sockets.socket(.eventsPublisher)
                try sockets.bind(socket, as: .eventsPublisher, to: endpoint)
                bound = try socket.lastEndpoint
                feed = try EventFeed(socket: socket, logger: logger)
            } catch let error as SocketBindError {
                guard case .failed(let error) = error else { throw BrokerError(error.description) }
                throw BrokerError(.eventsBind, "cannot bind the events endpoint \(endpoint): \(error.code.message) (\(error.code.cName)); choose another with --events, or --events none")
            } catch let error as ZMQError {
                throw BrokerError(.eventsBind, "cannot bind the events endpoint \(endpoint): \(error.code.message) (\(error.code.cName)); choose another with --events, or --events none")
            } catch {
                throw BrokerError(.eventsBind, "cannot bind the events endpoint \(endpoint): \(error); choose another with --events, or --events none")
            }
        }
        if let address = configuration.metricsHTTP {
            let server = try DashboardServer.start(
                address: address, insecure: configuration.insecure, state: DashboardState(origin: "broker"),
                access: configuration.httpAccess, logger: logger)
            server.state.setGraph(DashboardGraph(topology: topology))
            // The page reads exactly what the feed publishes, handed over on this thread.
            feed?.onPublish = { topic, json in server.state.accept(topic: topic, json: json) }
            httpServer = server
            metricsHTTPEndpoint = server.endpoint
        }
        reporter = MetricsReporter(metrics: metrics, feed: feed, httpServer: httpServer)
        return bound
    }

    func handleSubscriptions() { feed?.handleSubscriptions() }

    /// Subscriptions the feed has seen, so the broker can greet a newcomer with what it must know.
    var subscriptionsSeen: Int { feed?.subscriptionsSeen ?? 0 }

    func brokerStarted(endpoints: BrokerEndpoints) {
        var named = ["dispatch": endpoints.dispatch, "aggregator": endpoints.aggregator]
        if let events = endpoints.events { named["events"] = events }
        if let source = endpoints.source { named["source"] = source }
        feed?.publish(.brokerStarted(pipeline: topology.name, endpoints: named))
    }

    func brokerStopping(summary: RunSummary) {
        feed?.publish(.pipelineFinished(pipeline: summary.pipeline, items: summary.itemsIn, deadLettered: summary.deadLettered,
                                        durationMs: Int(summary.wallSeconds * 1000)))
        feed?.publish(.brokerStopping(
            reason: summary.interrupted ? "interrupted" : "finished",
            summary: ["items_in": summary.itemsIn, "items_out": summary.itemsOut, "dead_lettered": summary.deadLettered,
                      "unfinished": summary.unfinished, "protocol_errors": summary.protocolErrors]))
        httpServer?.stop()
        // PUB sends are asynchronous: give the last snapshot and these events a moment to leave
        // before the broker closes the socket, when anyone is listening.
        if let feed, feed.subscriptionsSeen > 0 { Thread.sleep(forTimeInterval: 0.2) }
    }

    /// Brings gauges up to date and publishes a snapshot (feed and HTTP).
    func publishMetrics(core: BrokerCore, now: ContinuousClock.Instant) {
        let unserved = Set(core.unservedStages.map(\.stage))
        for (index, name) in core.stageNames.enumerated() {
            metrics.setUnserved(stage: name, unserved.contains(index))
            metrics.setQueued(stage: name, core.queuedCount(stage: index))
            metrics.setInFlight(stage: name, core.inFlightCount(stage: index))
        }
        let nodes = core.nodeSummaries(now: now)
        let live = Set(nodes.map(\.node))
        for node in nodes {
            let age = node.heartbeatAge.components
            metrics.updateNode(NodeMetrics(
                id: node.node, host: node.host, workers: node.workers, inFlight: node.inFlight, completed: node.completed,
                heartbeatAgeMs: Int(age.seconds * 1000 + age.attoseconds / 1_000_000_000_000_000),
                capabilities: node.capabilities.values))
        }
        metrics.removeNodes(knownNodes.subtracting(live))
        knownNodes = live
        // Messages libzmq refused on the feed since the last interval: say so on the feed itself.
        if let feed, feed.droppedMessages > droppedReported {
            let dropped = feed.droppedMessages - droppedReported
            droppedReported = feed.droppedMessages
            feed.publish(.messagesDropped(socket: "events", dropped: dropped))
        }
        reporter?.publishNow()
    }

    private var knownNodes = Set<String>()
    private var droppedReported = 0

    func unauthorized(socket: String, address: String, reason: String) {
        metrics.unauthorizedAttempt(socket: socket)
        unauthorizedSeen += 1
        // An attacker retrying in a loop must not become a flood of events.
        if unauthorizedSeen <= 100 || unauthorizedSeen % 1000 == 0 {
            feed?.publish(.authRefused(socket: socket, peer: address, reason: reason, total: unauthorizedSeen))
        }
    }

    private var unauthorizedSeen = 0

    func keysRevoked(_ keys: [String]) {
        feed?.publish(.keysRevoked(keys: keys))
    }

    func insecure(endpoints: [String]) {
        feed?.publish(.brokerInsecure(endpoints: endpoints))
    }

    func backpressure(stage: String, queued: Int, limit: Int, active: Bool) {
        feed?.publish(.stageBackpressure(stage: stage, queued: queued, limit: limit, active: active))
    }

    func protocolError(peer: String, reason: String) {
        // A flood of garbage must not become a flood of events.
        protocolErrorsPublished += 1
        if protocolErrorsPublished <= 100 || protocolErrorsPublished % 1000 == 0 {
            feed?.publish(.protocolError(peer: peer, reason: reason))
        }
    }

    func deadLettered(_ letter: DeadLetter) {
        metrics.itemDeadLettered(stageAt: letter.stage)
        feed?.publish(.itemDeadLettered(stage: letter.stageName, itemID: String(letter.id), attempts: letter.attempts, reason: letter.detail))
    }

    func itemRetried(stageAt stage: Int, itemID: UInt64, attempt: Int, reason: RetryReason) {
        metrics.itemRetried(stageAt: stage)
        // One event per retry would let a crash loop flood the feed: the first ones, then one in a thousand.
        retriesPublished += 1
        if retriesPublished <= 100 || retriesPublished % 1000 == 0 {
            // `attempt` in the event is the attempt about to start.
            feed?.publish(.itemRetried(stage: topology.stages[stage].name, itemID: String(itemID), attempt: attempt + 1, reason: reason.rawValue))
        }
    }

    private var retriesPublished = 0

    func workerReady(_ worker: JoinedWorker) {
        feed?.publish(.workerReady(id: hex(worker.peer), node: worker.node, stage: worker.stageName, credit: worker.credit))
    }

    func workerLeft(peer: String, stage: String, reason: WorkerLeaveReason, requeued: Int) {
        switch reason {
        case .expired, .unreachable:
            feed?.publish(.workerExpired(id: peer, inFlight: requeued))
        case .disconnect, .protocolError, .brokerStopping, .revoked:
            break
        }
    }

    func nodeJoined(node: String, host: String, capabilities: Capabilities) {
        feed?.publish(.nodeJoined(id: node, host: host, capabilities: capabilities.values))
    }

    func stageUnserved(_ report: UnservedStageReport) {
        feed?.publish(.stageUnserved(stage: report.stageName, waiting: report.waiting,
                                     reasons: report.reasons.map { UnservedReason(node: $0.node, reason: $0.reason) }))
    }

    func nodeYielding(node: String, host: String, yielding: Bool, otherLoad: Double?) {
        feed?.publish(yielding ? .workerYielding(node: node, host: host, otherLoad: otherLoad)
                               : .workerResumed(node: node, host: host, otherLoad: otherLoad))
    }

    func stageServed(_ stage: String) {
        feed?.publish(.stageServed(stage: stage))
    }

    func breakerChanged(_ change: BreakerChange) {
        let worker = change.peer.map(hex) ?? ""
        switch change.state {
        case .open:
            metrics.breakerOpened(stageAt: change.stage)
            let milliseconds = (change.cooldown ?? .zero).components
            feed?.publish(.breakerOpened(worker: worker, node: change.node, stage: change.stageName, failures: change.failures,
                                         window: change.outcomes,
                                         cooldownMs: Int(milliseconds.seconds * 1000 + milliseconds.attoseconds / 1_000_000_000_000_000)))
        case .probing:
            feed?.publish(.breakerProbing(worker: worker, node: change.node, stage: change.stageName))
        case .closed:
            feed?.publish(.breakerClosed(worker: worker, node: change.node, stage: change.stageName))
        }
    }

    func nodeLeft(node: String, reason: WorkerLeaveReason, detail: String) {
        feed?.publish(.nodeLeft(id: node, reason: reason.rawValue, detail: detail))
    }
}
