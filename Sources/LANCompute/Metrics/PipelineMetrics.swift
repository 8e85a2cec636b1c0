// The broker's counters, gauges and latency histograms for one pipeline, and their two renderings.

import Foundation
import Histogram

/// Counters, gauges and latency histograms of one pipeline; confined to the broker thread (not Sendable).
///
/// The broker calls the `item...` methods as items move, the `set...` methods whenever a
/// queue or an in-flight table changes, and ``snapshot(at:)`` once per feed interval.
/// A stage name not given to ``init(pipeline:stageNames:startedAt:)`` is added on first use, so a
/// late-registered stage is counted rather than lost.
public final class PipelineMetrics {
    public let pipeline: String
    private var stages: [StageState] = []
    private var stageIndex: [String: Int] = [:]
    private var nodes: [NodeMetrics] = []
    /// Each node's position in `nodes`: the broker refreshes every node once an interval, and a
    /// search per node made that quadratic in the nodes (5,000 plain MDP workers are 5,000 nodes).
    private var nodeIndex: [String: Int] = [:]
    private var previousSnapshotTime: Date
    /// Peers and messages refused by socket (dispatch, events, aggregator, source).
    private var unauthorized: [String: Int] = [:]

    /// Upper bounds, in seconds, of the Prometheus latency histogram's buckets (+Inf is implied).
    public static let latencyBucketBounds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]

    public init(pipeline: String, stageNames: [String], startedAt: Date = Date()) {
        self.pipeline = pipeline
        self.previousSnapshotTime = startedAt
        for name in stageNames { _ = state(name) }
    }

    // MARK: Recording

    /// A peer or a message was refused on `socket` (unknown key, wrong role, failed handshake).
    public func unauthorizedAttempt(socket: String) {
        unauthorized[socket, default: 0] += 1
    }

    /// An item entered the stage's queue.
    public func itemReceived(stage: String) {
        stages[state(stage)].received += 1
    }

    /// An attempt succeeded; `latency` runs from enqueue to completion.
    public func itemCompleted(stage: String, latency: Duration) {
        let index = state(stage)
        stages[index].completed += 1
        stages[index].record(latency: latency)
    }

    /// An attempt failed (an error reply or a timeout).
    public func itemFailed(stage: String) {
        stages[state(stage)].failed += 1
    }

    /// An item was re-queued for another attempt (after a failure or a worker's death).
    public func itemRetried(stage: String) {
        stages[state(stage)].retried += 1
    }

    /// An item was given up on and written to the dead-letter file.
    public func itemDeadLettered(stage: String) {
        stages[state(stage)].deadLettered += 1
    }

    /// The number of items waiting in the stage's queue now.
    public func setQueued(stage: String, _ count: Int) {
        stages[state(stage)].queued = count
    }

    /// Whether the stage has items waiting and no live worker (reported by `event.stage.unserved`).
    public func setUnserved(stage: String, _ unserved: Bool) {
        stages[state(stage)].unserved = unserved
    }

    /// The number of the stage's items dispatched and not yet answered now.
    public func setInFlight(stage: String, _ count: Int) {
        stages[state(stage)].inFlight = count
    }

    /// Adds a node, or replaces the node with the same id. Snapshots show nodes as last given,
    /// so refresh them (their heartbeat age above all) just before each ``snapshot(at:)``.
    public func updateNode(_ node: NodeMetrics) {
        if let index = nodeIndex[node.id] {
            nodes[index] = node
        } else {
            nodeIndex[node.id] = nodes.count
            nodes.append(node)
        }
    }

    public func removeNode(id: String) { removeNodes([id]) }

    /// Removes these nodes at once: one pass over the nodes, however many leave together.
    public func removeNodes(_ ids: Set<String>) {
        guard ids.contains(where: { nodeIndex[$0] != nil }) else { return }
        nodes.removeAll { ids.contains($0.id) }
        nodeIndex = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($0.element.id, $0.offset) })
    }

    // MARK: Recording by position (the broker's hot path)

    // `index` is the stage's position in `stageNames`, as given to `init`.
    func itemsReceived(stageAt index: Int, count: Int) { stages[index].received += count }
    /// An attempt succeeded `microseconds` after its item was queued at the stage (the broker's own count).
    func itemCompleted(stageAt index: Int, microseconds: UInt64) {
        stages[index].completed += 1
        stages[index].record(microseconds: microseconds)
    }
    func itemFailed(stageAt index: Int) { stages[index].failed += 1 }
    func itemRetried(stageAt index: Int) { stages[index].retried += 1 }
    func itemDeadLettered(stageAt index: Int) { stages[index].deadLettered += 1 }
    func breakerOpened(stageAt index: Int) { stages[index].breakersOpened += 1 }
    /// Items the stage is done with: completed or dead-lettered.
    func finishedCount(stageAt index: Int) -> Int { stages[index].completed + stages[index].deadLettered }

    // MARK: Reading

    /// The current figures. `rate` is completions per second since the previous call
    /// (or since `init` for the first one); calling it also starts the next rate interval.
    public func snapshot(at date: Date = Date()) -> MetricsSnapshot {
        let elapsed = date.timeIntervalSince(previousSnapshotTime)
        var stageSnapshots: [MetricsSnapshot.Stage] = []
        stageSnapshots.reserveCapacity(stages.count)
        for index in stages.indices {
            if elapsed > 0 {
                let completedInInterval = stages[index].completed - stages[index].completedAtPreviousSnapshot
                stages[index].rate = Double(completedInInterval) / elapsed
                stages[index].completedAtPreviousSnapshot = stages[index].completed
            }
            stageSnapshots.append(stages[index].snapshot)
        }
        if elapsed > 0 { previousSnapshotTime = date }
        return MetricsSnapshot(
            ts: (date.timeIntervalSince1970 * 1000).rounded() / 1000, pipeline: pipeline,
            stages: stageSnapshots, nodes: nodes)
    }

    /// The figures in the Prometheus text exposition format, version 0.0.4.
    public func prometheusText() -> String {
        var text = PrometheusText()
        let pipelineLabel = ("pipeline", pipeline)

        text.family("lancompute_stage_items_total", type: "counter",
                    help: "Items seen by a stage, by outcome (received, completed, failed, retried, dead_lettered).")
        for stage in stages {
            let outcomes: [(String, Int)] = [
                ("received", stage.received), ("completed", stage.completed), ("failed", stage.failed),
                ("retried", stage.retried), ("dead_lettered", stage.deadLettered),
            ]
            for (outcome, value) in outcomes {
                text.sample("lancompute_stage_items_total",
                            labels: [pipelineLabel, ("stage", stage.name), ("outcome", outcome)], value: value)
            }
        }

        text.family("lancompute_stage_breakers_opened_total", type: "counter",
                    help: "Times a worker's circuit breaker at a stage opened (the worker was quarantined for a cool-down).")
        for stage in stages {
            text.sample("lancompute_stage_breakers_opened_total", labels: [pipelineLabel, ("stage", stage.name)], value: stage.breakersOpened)
        }

        text.family("lancompute_stage_queued", type: "gauge", help: "Items waiting in a stage's queue.")
        for stage in stages {
            text.sample("lancompute_stage_queued", labels: [pipelineLabel, ("stage", stage.name)], value: stage.queued)
        }
        text.family("lancompute_stage_in_flight", type: "gauge", help: "Items dispatched to workers and not yet answered.")
        for stage in stages {
            text.sample("lancompute_stage_in_flight", labels: [pipelineLabel, ("stage", stage.name)], value: stage.inFlight)
        }

        text.family("lancompute_stage_latency_seconds", type: "histogram",
                    help: "Time from entering a stage's queue to completion.")
        for stage in stages {
            let labels = [pipelineLabel, ("stage", stage.name)]
            var cumulative = 0
            for (bound, count) in zip(Self.latencyBucketBounds, stage.bucketCounts) {
                cumulative += count
                text.sample("lancompute_stage_latency_seconds_bucket",
                            labels: labels + [("le", PrometheusText.format(bound))], value: cumulative)
            }
            text.sample("lancompute_stage_latency_seconds_bucket", labels: labels + [("le", "+Inf")], value: stage.completed)
            text.sample("lancompute_stage_latency_seconds_sum", labels: labels, value: stage.latencySumSeconds)
            text.sample("lancompute_stage_latency_seconds_count", labels: labels, value: stage.completed)
        }

        text.family("lancompute_unauthorized_total", type: "counter",
                    help: "Peers and messages refused: unknown keys, wrong roles, failed handshakes.")
        for (socket, count) in unauthorized.sorted(by: { $0.key < $1.key }) {
            text.sample("lancompute_unauthorized_total", labels: [pipelineLabel, ("socket", socket)], value: count)
        }

        text.family("lancompute_nodes", type: "gauge", help: "Nodes known to the broker.")
        text.sample("lancompute_nodes", labels: [pipelineLabel], value: nodes.count)
        let nodeGauges: [(name: String, type: String, help: String, value: (NodeMetrics) -> Double)] = [
            ("lancompute_node_workers", "gauge", "Workers a node runs.", { Double($0.workers) }),
            ("lancompute_node_in_flight", "gauge", "Items in flight on a node.", { Double($0.inFlight) }),
            ("lancompute_node_completed_total", "counter", "Items a node completed since it joined.", { Double($0.completed) }),
            ("lancompute_node_heartbeat_age_seconds", "gauge", "Seconds since the broker last heard from a node.",
             { Double($0.heartbeatAgeMs) / 1000 }),
        ]
        for gauge in nodeGauges {
            text.family(gauge.name, type: gauge.type, help: gauge.help)
            for node in nodes {
                text.sample(gauge.name, labels: [pipelineLabel, ("node", node.id), ("host", node.host)], value: gauge.value(node))
            }
        }
        return text.output
    }

    // MARK: Stage state

    private func state(_ name: String) -> Int {
        if let index = stageIndex[name] { return index }
        stages.append(StageState(name: name))
        stageIndex[name] = stages.count - 1
        return stages.count - 1
    }
}

@available(*, unavailable)
extension PipelineMetrics: Sendable {}

/// One stage's running totals.
private struct StageState {
    let name: String
    var received = 0
    var completed = 0
    var failed = 0
    var retried = 0
    var deadLettered = 0
    var queued = 0
    var inFlight = 0
    var unserved = false
    var breakersOpened = 0
    var rate = 0.0
    var completedAtPreviousSnapshot = 0
    /// Latencies in microseconds: 1 µs to one hour at three significant digits.
    var latencies = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: Self.longestLatencyMicroseconds,
                                      numberOfSignificantValueDigits: .three)
    /// The exact largest latency: the histogram only knows its bucket.
    var maxLatencyMicroseconds: UInt64 = 0
    /// Non-cumulative counts per ``PipelineMetrics/latencyBucketBounds`` bucket, kept exactly for Prometheus.
    var bucketCounts = [Int](repeating: 0, count: PipelineMetrics.latencyBucketBounds.count)
    var latencySumSeconds = 0.0

    static let longestLatencyMicroseconds: UInt64 = 3_600_000_000

    init(name: String) { self.name = name }

    mutating func record(latency: Duration) {
        // Negative durations (clock trouble) count as zero; absurdly long ones saturate instead of overflowing.
        let (seconds, attoseconds) = latency.components
        if seconds < 0 {
            record(microseconds: 0)
        } else if seconds >= Int64.max / 1_000_000 - 1 {
            record(microseconds: UInt64(Int64.max))
        } else {
            record(microseconds: UInt64(seconds * 1_000_000 + max(0, attoseconds) / 1_000_000_000_000))
        }
    }

    mutating func record(microseconds value: UInt64) {
        latencies.record(min(max(value, 1), Self.longestLatencyMicroseconds))
        maxLatencyMicroseconds = max(maxLatencyMicroseconds, value)
        let secondsValue = Double(value) / 1_000_000
        latencySumSeconds += secondsValue
        if let bucket = PipelineMetrics.latencyBucketBounds.firstIndex(where: { secondsValue <= $0 }) {
            bucketCounts[bucket] += 1
        }
    }

    var snapshot: MetricsSnapshot.Stage {
        func milliseconds(_ microseconds: UInt64) -> Double { Double(microseconds) / 1000 }
        let latency: MetricsSnapshot.Latency
        if latencies.totalCount == 0 {
            latency = MetricsSnapshot.Latency()
        } else {
            latency = MetricsSnapshot.Latency(
                p50: milliseconds(latencies.valueAtPercentile(50)),
                p90: milliseconds(latencies.valueAtPercentile(90)),
                p99: milliseconds(latencies.valueAtPercentile(99)),
                max: milliseconds(maxLatencyMicroseconds))
        }
        return MetricsSnapshot.Stage(
            name: name, received: received, completed: completed, failed: failed, retried: retried,
            deadLettered: deadLettered, queued: queued, inFlight: inFlight,
            rate: (rate * 100).rounded() / 100, latencyMs: latency, unserved: unserved,
            breakersOpened: breakersOpened)
    }
}
