// The events the broker publishes on `event.<kind>` topics, with their topics and JSON fields.

import Foundation

/// Why one node does not serve a stage, as it told the broker.
public struct UnservedReason: Sendable, Equatable {
    public var node: String
    public var reason: String

    public init(node: String, reason: String) {
        self.node = node
        self.reason = reason
    }
}

/// Something that happened in the cluster, worth telling people who watch it.
///
/// Events are for observers only: nothing the cluster needs for correctness travels on the feed,
/// and a subscriber may miss some (it sees a gap in `seq`). Docs/metrics.md lists every field.
public enum ClusterEvent: Sendable, Equatable {
    /// The broker bound its sockets and is ready; `endpoints` maps a role (dispatch, events...) to its endpoint.
    case brokerStarted(pipeline: String, endpoints: [String: String])
    /// The broker is shutting down; `summary` holds final totals (items, completed, dead_lettered...).
    case brokerStopping(reason: String, summary: [String: Int])
    /// A node announced itself (its first worker's READY, or a discovery beacon).
    case nodeJoined(id: String, host: String, capabilities: [String: String])
    /// A node's last worker went away: `reason` is one of ``WorkerLeaveReason`` (disconnect,
    /// expired, unreachable, protocol-error, broker-stopping), `detail` a sentence about it.
    case nodeLeft(id: String, reason: String, detail: String = "")
    /// A worker said READY for a stage.
    case workerReady(id: String, node: String, stage: String, credit: Int)
    /// A worker missed its heartbeats; its `inFlight` items are being redelivered.
    case workerExpired(id: String, inFlight: Int)
    /// An item was re-queued for another attempt.
    case itemRetried(stage: String, itemID: String, attempt: Int, reason: String)
    /// An item was given up on (attempts exhausted, deadline passed) and written to the dead-letter file.
    case itemDeadLettered(stage: String, itemID: String, attempts: Int, reason: String)
    /// A stage's queue reached its limit (`active` true: sources are paused) or drained below it (false).
    case stageBackpressure(stage: String, queued: Int, limit: Int, active: Bool)
    /// A peer sent something the broker could not accept (bad frames, unknown service, duplicate READY).
    case protocolError(peer: String, reason: String)
    /// A socket dropped messages at its high-water mark (`dropped` since the last such event).
    case messagesDropped(socket: String, dropped: Int)
    /// Every item of the run reached the sink or the dead-letter file.
    case pipelineFinished(pipeline: String, items: Int, deadLettered: Int, durationMs: Int)
    /// A peer or a message was refused: unknown key, wrong role, failed handshake (Docs/security.md).
    case authRefused(socket: String, peer: String, reason: String, total: Int)
    /// Keys removed from authorized_keys (or whose role changed) at a reload.
    case keysRevoked(keys: [String])
    /// The broker runs with `--insecure` on endpoints the network can reach; published every minute.
    case brokerInsecure(endpoints: [String])
    /// A stage has items waiting and no live worker serves it; `reasons` are what workers said when
    /// they skipped it. Published when first so, and again when the reasons change.
    case stageUnserved(stage: String, waiting: Int, reasons: [UnservedReason])
    /// A stage reported unserved has a worker again.
    case stageServed(stage: String)
    /// A node's workers yield to its owner: the rest of its machine keeps `otherLoad` cores busy.
    case workerYielding(node: String, host: String, otherLoad: Double?)
    /// A node that yielded takes items again.
    case workerResumed(node: String, host: String, otherLoad: Double?)
    /// A worker's circuit breaker at a stage opened: `failures` of its last `window` attempts failed,
    /// and it gets none of the stage's items for `cooldownMs`.
    case breakerOpened(worker: String, node: String, stage: String, failures: Int, window: Int, cooldownMs: Int)
    /// Its cool-down is over: the worker may take one item (the probe).
    case breakerProbing(worker: String, node: String, stage: String)
    /// Its probe succeeded: the worker gets the stage's items again.
    case breakerClosed(worker: String, node: String, stage: String)

    /// The topic frame: `event.` then the kind, general to specific, so SUB prefixes select families.
    public var topic: String { "event." + kind }

    /// The part of the topic after `event.`, e.g. `node.joined`.
    public var kind: String {
        switch self {
        case .brokerStarted: "broker.started"
        case .brokerStopping: "broker.stopping"
        case .nodeJoined: "node.joined"
        case .nodeLeft: "node.left"
        case .workerReady: "worker.ready"
        case .workerExpired: "worker.expired"
        case .itemRetried: "item.retried"
        case .itemDeadLettered: "item.dead-lettered"
        case .stageBackpressure: "stage.backpressure"
        case .protocolError: "protocol.error"
        case .messagesDropped: "feed.dropped"
        case .pipelineFinished: "pipeline.finished"
        case .authRefused: "auth.refused"
        case .keysRevoked: "keys.revoked"
        case .brokerInsecure: "broker.insecure"
        case .stageUnserved: "stage.unserved"
        case .stageServed: "stage.served"
        case .workerYielding: "worker.yielding"
        case .workerResumed: "worker.resumed"
        case .breakerOpened: "breaker.opened"
        case .breakerProbing: "breaker.probing"
        case .breakerClosed: "breaker.closed"
        }
    }

    /// The event's own fields, in the order they are written after `type`, `seq` and `ts`.
    var fields: [(String, JSONText)] {
        switch self {
        case .brokerStarted(let pipeline, let endpoints):
            [("pipeline", .string(pipeline)), ("endpoints", .sortedObject(endpoints))]
        case .brokerStopping(let reason, let summary):
            [("reason", .string(reason)), ("summary", .sortedObject(summary))]
        case .nodeJoined(let id, let host, let capabilities):
            [("id", .string(id)), ("host", .string(host)), ("capabilities", .sortedObject(capabilities))]
        case .nodeLeft(let id, let reason, let detail):
            [("id", .string(id)), ("reason", .string(reason)), ("detail", .string(detail))]
        case .workerReady(let id, let node, let stage, let credit):
            [("id", .string(id)), ("node", .string(node)), ("stage", .string(stage)), ("credit", .int(credit))]
        case .workerExpired(let id, let inFlight):
            [("id", .string(id)), ("in_flight", .int(inFlight))]
        case .itemRetried(let stage, let itemID, let attempt, let reason):
            [("stage", .string(stage)), ("item_id", .string(itemID)), ("attempt", .int(attempt)), ("reason", .string(reason))]
        case .itemDeadLettered(let stage, let itemID, let attempts, let reason):
            [("stage", .string(stage)), ("item_id", .string(itemID)), ("attempts", .int(attempts)), ("reason", .string(reason))]
        case .stageBackpressure(let stage, let queued, let limit, let active):
            [("stage", .string(stage)), ("queued", .int(queued)), ("limit", .int(limit)), ("active", .bool(active))]
        case .protocolError(let peer, let reason):
            [("peer", .string(peer)), ("reason", .string(reason))]
        case .messagesDropped(let socket, let dropped):
            [("socket", .string(socket)), ("dropped", .int(dropped))]
        case .pipelineFinished(let pipeline, let items, let deadLettered, let durationMs):
            [("pipeline", .string(pipeline)), ("items", .int(items)), ("dead_lettered", .int(deadLettered)),
             ("duration_ms", .int(durationMs))]
        case .authRefused(let socket, let peer, let reason, let total):
            [("socket", .string(socket)), ("peer", .string(peer)), ("reason", .string(reason)), ("total", .int(total))]
        case .keysRevoked(let keys):
            [("keys", .array(keys.map { .string($0) }))]
        case .brokerInsecure(let endpoints):
            [("endpoints", .array(endpoints.map { .string($0) }))]
        case .stageUnserved(let stage, let waiting, let reasons):
            [("stage", .string(stage)), ("waiting", .int(waiting)),
             ("reasons", .array(reasons.map { .object([("node", .string($0.node)), ("reason", .string($0.reason))]) }))]
        case .stageServed(let stage):
            [("stage", .string(stage))]
        case .workerYielding(let node, let host, let otherLoad), .workerResumed(let node, let host, let otherLoad):
            [("node", .string(node)), ("host", .string(host))] + (otherLoad.map { [("other_load", JSONText.number($0))] } ?? [])
        case .breakerOpened(let worker, let node, let stage, let failures, let window, let cooldownMs):
            [("worker", .string(worker)), ("node", .string(node)), ("stage", .string(stage)), ("failures", .int(failures)),
             ("window", .int(window)), ("cooldown_ms", .int(cooldownMs))]
        case .breakerProbing(let worker, let node, let stage), .breakerClosed(let worker, let node, let stage):
            [("worker", .string(worker)), ("node", .string(node)), ("stage", .string(stage))]
        }
    }

    /// The message's JSON object: `type` (the topic), `seq`, `ts` (seconds since 1970, UTC), then the fields.
    public func json(seq: UInt64, at date: Date) -> String {
        let header: [(String, JSONText)] = [
            ("type", .string(topic)), ("seq", .unsigned(seq)),
            ("ts", .number((date.timeIntervalSince1970 * 1000).rounded() / 1000)),
        ]
        return JSONText.object(header + fields).serialized
    }
}
