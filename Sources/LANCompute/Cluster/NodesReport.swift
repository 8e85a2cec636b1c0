// The cluster as `mmi.nodes` answers it: each node, its fingerprint summary, stages and counts; JSON and a table.

import Foundation

/// Every node the broker knows, as `lancompute nodes` prints it. The JSON layout is specified in
/// `Docs/cluster.md`.
public struct NodesReport: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public var schema: Int = NodesReport.schemaVersion
    public var pipeline: String
    public var nodes: [Node]
    /// Stages with items waiting and no live worker, and why the nodes that reported them skip them.
    /// Absent from an older broker's report.
    public var unserved: [UnservedStageEntry]?

    public struct UnservedStageEntry: Codable, Sendable, Equatable {
        public var stage: String
        public var waiting: Int
        public var reasons: [Reason]

        public struct Reason: Codable, Sendable, Equatable {
            public var node: String
            public var reason: String
        }
    }

    /// One worker's circuit breaker at one stage.
    public struct Breaker: Codable, Sendable, Equatable {
        public var stage: String
        /// `closed`, `open` or `probing`.
        public var state: String
        /// While open: milliseconds until its probe.
        public var probeInMs: Int?
        /// Failed attempts among the outcomes it weighs now.
        public var failures: Int
        public var outcomes: Int

        public init(stage: String, state: String, probeInMs: Int? = nil, failures: Int, outcomes: Int) {
            self.stage = stage
            self.state = state
            self.probeInMs = probeInMs
            self.failures = failures
            self.outcomes = outcomes
        }

        /// `thumbs open 25s`, `thumbs probing`, `thumbs closed`.
        var cell: String {
            guard let probeInMs, state == "open" else { return "\(stage) \(state)" }
            return "\(stage) open \((probeInMs + 999) / 1000)s"
        }
    }

    public struct Node: Codable, Sendable, Equatable {
        /// The worker process's id (`HOST-PID-XXXXXXXX`), or `mdp-HEX` for a plain MDP worker.
        public var node: String
        public var host: String
        /// The stages its workers serve, sorted.
        public var stages: [String]
        /// Registered workers (one per stage it serves).
        public var workers: Int
        public var inFlight: Int
        public var completed: Int
        public var heartbeatAgeMs: Int
        /// `serving`, or `yielding to owner` while its machine's owner is busy (owner policy).
        /// Absent from an older broker's report.
        public var state: String?
        public var arch: String?
        public var os: String?
        public var cores: Int?
        public var memoryBytes: Int?
        public var gpus: Int
        public var gpuModel: String?
        public var gpuMemoryBytes: Int?
        public var labels: [String: String]
        /// Every capability as the node announced it (and refreshed it).
        public var capabilities: [String: String]
        /// Items each of its workers may hold now, by the stage it registered (a chain by its head):
        /// the credit announced on READY or, when it adapts, the latest refresh. Absent from an older broker.
        public var credits: [String: Int]?
        /// The round trip to the broker its workers last measured, in milliseconds; nil until one reports it.
        public var rttMs: Double?

        public static let servingState = "serving"
        public static let yieldingState = "yielding to owner"
        /// Its workers' circuit breakers, by stage (none for a stage with `breaker: false`). Absent
        /// from an older broker's report.
        public var breakers: [Breaker]?

        public init(node: String, host: String, stages: [String], workers: Int, inFlight: Int, completed: Int,
                    heartbeatAgeMs: Int, capabilities: Capabilities, credits: [String: Int]? = nil, rttMs: Double? = nil) {
            self.credits = credits
            self.rttMs = rttMs
            self.node = node
            self.host = host
            self.stages = stages
            self.workers = workers
            self.inFlight = inFlight
            self.completed = completed
            self.heartbeatAgeMs = heartbeatAgeMs
            self.state = capabilities["yielding"] == "true" ? Self.yieldingState : Self.servingState
            self.arch = capabilities["arch"]
            self.os = capabilities["os"]
            self.cores = capabilities["cores"].flatMap(Int.init)
            self.memoryBytes = capabilities["memory"].flatMap(Int.init)
            // A plain worker may say gpu=true without a count.
            self.gpus = capabilities["gpu.count"].flatMap(Int.init) ?? (capabilities["gpu"] == "true" ? 1 : 0)
            self.gpuModel = capabilities["gpu.model"]
            self.gpuMemoryBytes = capabilities["gpu.memory"].flatMap(Int.init)
            self.labels = capabilities.labels
            self.capabilities = capabilities.values
        }
    }

    public init(pipeline: String, nodes: [Node]) {
        self.pipeline = pipeline
        self.nodes = nodes
    }

    init(pipeline: String, summaries: [NodeSummary], unserved: [UnservedStageReport] = []) {
        self.init(pipeline: pipeline, nodes: summaries.map { summary in
            var node = Node(node: summary.node, host: summary.host, stages: summary.stages, workers: summary.workers,
                            inFlight: summary.inFlight, completed: summary.completed,
                            heartbeatAgeMs: Self.milliseconds(summary.heartbeatAge), capabilities: summary.capabilities,
                            credits: summary.credits,
                            rttMs: summary.roundTrip.map { (CreditController.seconds($0) * 10_000).rounded() / 10 })
            node.breakers = summary.breakers.map { breaker in
                Breaker(stage: breaker.stage, state: breaker.state.name, probeInMs: breaker.probeIn.map(Self.milliseconds),
                        failures: breaker.failures, outcomes: breaker.outcomes)
            }
            return node
        })
        self.unserved = unserved.map { report in
            UnservedStageEntry(stage: report.stageName, waiting: report.waiting,
                               reasons: report.reasons.map { UnservedStageEntry.Reason(node: $0.node, reason: $0.reason) })
        }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let parts = duration.components
        return Int(parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
    }

    public func jsonData(pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    public init(json: Data) throws {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        self = try decoder.decode(NodesReport.self, from: json)
    }

    /// One line per node under a header, columns padded to their widest cell.
    public func table() -> [String] {
        let header = ["NODE", "HOST", "ARCH/OS", "CORES", "MEMORY", "GPUS", "STAGES", "STATE", "IN-FLIGHT", "CREDIT", "RTT", "DONE", "BREAKERS", "HEARTBEAT"]
        let rows = nodes.map { node -> [String] in
            var gpus = node.gpus == 0 ? "-" : String(node.gpus)
            if node.gpus > 0, let model = node.gpuModel {
                gpus += " x \(model)" + (node.gpuMemoryBytes.map { " \(Self.gibibytes($0))" } ?? "")
            }
            return [
                node.node, node.host, "\(node.arch ?? "?")/\(node.os ?? "?")", node.cores.map(String.init) ?? "?",
                node.memoryBytes.map(Self.gibibytes) ?? "?", gpus, node.stages.joined(separator: ","), node.state ?? "?",
                String(node.inFlight), Self.creditCell(node.credits), node.rttMs.map { String(format: "%.1f ms", $0) } ?? "-",
                String(node.completed),
                node.breakers.map { $0.isEmpty ? "-" : $0.map(\.cell).joined(separator: ",") } ?? "-", "\(node.heartbeatAgeMs) ms",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return [line(header)] + rows.map(line)
    }

    /// One line per unserved stage, for under the table: `UNSERVED stage gpu: 3 item(s) wait; NODE: REASON`.
    public func unservedLines() -> [String] {
        (unserved ?? []).map { entry in
            let why = entry.reasons.isEmpty ? "no worker registered" : entry.reasons.map { "\($0.node): \($0.reason)" }.joined(separator: "; ")
            return "UNSERVED stage \(entry.stage): \(entry.waiting) item(s) wait; \(why)"
        }
    }

    /// One stage: its credit; several: `stage=credit` each, by name; none known: `-`.
    static func creditCell(_ credits: [String: Int]?) -> String {
        guard let credits, !credits.isEmpty else { return "-" }
        if credits.count == 1 { return String(credits.first!.value) }
        return credits.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func gibibytes(_ bytes: Int) -> String {
        String(format: "%.1f GiB", Double(bytes) / 1_073_741_824)
    }
}
