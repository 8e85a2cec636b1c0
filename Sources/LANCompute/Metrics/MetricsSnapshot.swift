// The metrics snapshot published on the `metrics` topic, and the per-node figures it carries.

import Foundation

/// What the broker knows about one node (a machine running workers), as shown in snapshots.
public struct NodeMetrics: Sendable, Codable, Equatable {
    public var id: String
    public var host: String
    /// Workers the node runs (live DEALER peers).
    public var workers: Int
    /// Items dispatched to the node's workers and not yet answered.
    public var inFlight: Int
    /// Items the node's workers completed since it joined (cumulative).
    public var completed: Int
    /// Milliseconds since the broker last heard from the node.
    public var heartbeatAgeMs: Int
    /// Capabilities the node announced (arch, os, cores, labels...).
    public var capabilities: [String: String]

    public init(
        id: String, host: String, workers: Int = 0, inFlight: Int = 0, completed: Int = 0,
        heartbeatAgeMs: Int = 0, capabilities: [String: String] = [:]
    ) {
        self.id = id
        self.host = host
        self.workers = workers
        self.inFlight = inFlight
        self.completed = completed
        self.heartbeatAgeMs = heartbeatAgeMs
        self.capabilities = capabilities
    }

    var jsonText: JSONText {
        .object([
            ("id", .string(id)), ("host", .string(host)), ("workers", .int(workers)), ("in_flight", .int(inFlight)),
            ("completed", .int(completed)), ("heartbeat_age_ms", .int(heartbeatAgeMs)),
            ("capabilities", .sortedObject(capabilities)),
        ])
    }

    enum CodingKeys: String, CodingKey {
        case id, host, workers
        case inFlight = "in_flight"
        case completed
        case heartbeatAgeMs = "heartbeat_age_ms"
        case capabilities
    }
}

/// One moment of a pipeline's metrics: the JSON object on the `metrics` topic.
///
/// Counters are cumulative since the pipeline started; gauges (`queued`, `in_flight`) are
/// current values; `rate` covers the interval since the previous snapshot.
public struct MetricsSnapshot: Sendable, Codable, Equatable {
    /// The value of the `type` key.
    public static let type = "metrics"

    /// The feed's sequence number on the `metrics` topic; nil until ``EventFeed`` publishes it.
    public var seq: UInt64?
    /// Seconds since 1970-01-01 UTC, millisecond precision.
    public var ts: Double
    public var pipeline: String
    public var stages: [Stage]
    public var nodes: [NodeMetrics]

    public init(seq: UInt64? = nil, ts: Double, pipeline: String, stages: [Stage], nodes: [NodeMetrics]) {
        self.seq = seq
        self.ts = ts
        self.pipeline = pipeline
        self.stages = stages
        self.nodes = nodes
    }

    /// One stage's figures.
    public struct Stage: Sendable, Codable, Equatable {
        public var name: String
        /// Items that entered the stage's queue.
        public var received: Int
        /// Attempts that succeeded.
        public var completed: Int
        /// Attempts that failed (error reply or timeout).
        public var failed: Int
        /// Items re-queued for another attempt.
        public var retried: Int
        /// Items given up on (attempts exhausted, deadline passed).
        public var deadLettered: Int
        public var queued: Int
        public var inFlight: Int
        /// Completions per second over the last interval.
        public var rate: Double
        public var latencyMs: Latency
        /// Items wait and no live worker serves the stage (false in an older broker's snapshot).
        public var unserved: Bool
        /// Times a worker's circuit breaker at the stage opened (0 in an older broker's snapshot).
        public var breakersOpened: Int

        public init(
            name: String, received: Int = 0, completed: Int = 0, failed: Int = 0, retried: Int = 0,
            deadLettered: Int = 0, queued: Int = 0, inFlight: Int = 0, rate: Double = 0, latencyMs: Latency = Latency(),
            unserved: Bool = false, breakersOpened: Int = 0
        ) {
            self.unserved = unserved
            self.breakersOpened = breakersOpened
            self.name = name
            self.received = received
            self.completed = completed
            self.failed = failed
            self.retried = retried
            self.deadLettered = deadLettered
            self.queued = queued
            self.inFlight = inFlight
            self.rate = rate
            self.latencyMs = latencyMs
        }

        var jsonText: JSONText {
            .object([
                ("name", .string(name)), ("received", .int(received)), ("completed", .int(completed)),
                ("failed", .int(failed)), ("retried", .int(retried)), ("dead_lettered", .int(deadLettered)),
                ("queued", .int(queued)), ("in_flight", .int(inFlight)), ("rate", .number(rate)),
                ("latency_ms", .object([
                    ("p50", .number(latencyMs.p50)), ("p90", .number(latencyMs.p90)),
                    ("p99", .number(latencyMs.p99)), ("max", .number(latencyMs.max)),
                ])),
                ("unserved", .bool(unserved)), ("breakers_opened", .int(breakersOpened)),
            ])
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                name: try container.decode(String.self, forKey: .name), received: try container.decode(Int.self, forKey: .received),
                completed: try container.decode(Int.self, forKey: .completed), failed: try container.decode(Int.self, forKey: .failed),
                retried: try container.decode(Int.self, forKey: .retried), deadLettered: try container.decode(Int.self, forKey: .deadLettered),
                queued: try container.decode(Int.self, forKey: .queued), inFlight: try container.decode(Int.self, forKey: .inFlight),
                rate: try container.decode(Double.self, forKey: .rate), latencyMs: try container.decode(Latency.self, forKey: .latencyMs),
                unserved: try container.decodeIfPresent(Bool.self, forKey: .unserved) ?? false,
                breakersOpened: try container.decodeIfPresent(Int.self, forKey: .breakersOpened) ?? 0)
        }

        enum CodingKeys: String, CodingKey {
            case name, received, completed, failed, retried
            case deadLettered = "dead_lettered"
            case queued
            case inFlight = "in_flight"
            case rate
            case latencyMs = "latency_ms"
            case unserved
            case breakersOpened = "breakers_opened"
        }
    }

    /// Latency percentiles in milliseconds, enqueue to completion, over every completion so far.
    public struct Latency: Sendable, Codable, Equatable {
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double

        public init(p50: Double = 0, p90: Double = 0, p99: Double = 0, max: Double = 0) {
            self.p50 = p50
            self.p90 = p90
            self.p99 = p99
            self.max = max
        }
    }

    enum CodingKeys: String, CodingKey {
        case type, seq, ts, pipeline, stages, nodes
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        guard type == Self.type else {
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "expected type \"metrics\", found \"\(type)\"")
        }
        seq = try container.decodeIfPresent(UInt64.self, forKey: .seq)
        ts = try container.decode(Double.self, forKey: .ts)
        pipeline = try container.decode(String.self, forKey: .pipeline)
        stages = try container.decode([Stage].self, forKey: .stages)
        nodes = try container.decode([NodeMetrics].self, forKey: .nodes)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.type, forKey: .type)
        try container.encodeIfPresent(seq, forKey: .seq)
        try container.encode(ts, forKey: .ts)
        try container.encode(pipeline, forKey: .pipeline)
        try container.encode(stages, forKey: .stages)
        try container.encode(nodes, forKey: .nodes)
    }

    /// The snapshot as one line of JSON, keys in the documented order (type, seq, ts, pipeline, stages, nodes),
    /// so that people reading the feed find the same layout every time.
    public func jsonData() -> Data {
        Data(jsonText.serialized.utf8)
    }

    var jsonText: JSONText {
        var members: [(String, JSONText)] = [("type", .string(Self.type))]
        if let seq { members.append(("seq", .unsigned(seq))) }
        members += [
            ("ts", .number(ts)),
            ("pipeline", .string(pipeline)),
            ("stages", .array(stages.map(\.jsonText))),
            ("nodes", .array(nodes.map(\.jsonText))),
        ]
        return .object(members)
    }

    /// Decodes a snapshot from the JSON of a `metrics` message.
    public static func decode(json: some StringProtocol) throws -> MetricsSnapshot {
        try JSONDecoder().decode(MetricsSnapshot.self, from: Data(json.utf8))
    }
}
