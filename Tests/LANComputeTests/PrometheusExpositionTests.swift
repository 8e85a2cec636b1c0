// Checks PipelineMetrics.prometheusText() with an independent parser: Python's prometheus_client.

import Foundation
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct PrometheusExpositionTests {
    /// Parses standard input with prometheus_client and prints the families as JSON.
    static let parserScript = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        families = []
        for family in text_string_to_metric_families(sys.stdin.read()):
            families.append({"name": family.name, "type": family.type, "help": family.documentation,
                             "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]})
        print(json.dumps(families))
        """

    struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    struct Family {
        let name: String
        let type: String
        let samples: [Sample]
    }

    static func parse(_ exposition: String) throws -> [String: Family] {
        let result = try PythonPeer.run(script: parserScript, input: exposition)
        try #require(result.status == 0, "the parser rejected the exposition: \(result.error)")
        let array = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]])
        var families: [String: Family] = [:]
        for entry in array {
            let samples = (entry["samples"] as? [[String: Any]] ?? []).map { sample in
                Sample(name: sample["name"] as? String ?? "", labels: sample["labels"] as? [String: String] ?? [:],
                       value: (sample["value"] as? NSNumber)?.doubleValue ?? .nan)
            }
            let name = entry["name"] as? String ?? ""
            families[name] = Family(name: name, type: entry["type"] as? String ?? "", samples: samples)
        }
        return families
    }

    static func sampleMetrics() -> PipelineMetrics {
        let metrics = PipelineMetrics(pipeline: "thumbs", stageNames: ["resize", "upload"])
        for _ in 0..<4 { metrics.itemReceived(stage: "resize") }
        metrics.itemCompleted(stage: "resize", latency: .milliseconds(3))
        metrics.itemCompleted(stage: "resize", latency: .milliseconds(40))
        metrics.itemCompleted(stage: "resize", latency: .seconds(2))
        metrics.itemFailed(stage: "resize")
        metrics.itemRetried(stage: "resize")
        metrics.itemDeadLettered(stage: "upload")
        metrics.setQueued(stage: "upload", 7)
        metrics.setInFlight(stage: "resize", 3)
        metrics.updateNode(NodeMetrics(id: "n1", host: "alpha", workers: 4, inFlight: 2, completed: 11, heartbeatAgeMs: 250))
        return metrics
    }

    @Test func familiesHaveTheDocumentedNamesAndTypes() throws {
        let families = try Self.parse(Self.sampleMetrics().prometheusText())
        // The parser reports a counter's family without its `_total` suffix.
        let expected: [String: String] = [
            "lancompute_stage_items": "counter",
            "lancompute_stage_breakers_opened": "counter",
            "lancompute_stage_queued": "gauge",
            "lancompute_stage_in_flight": "gauge",
            "lancompute_stage_latency_seconds": "histogram",
            "lancompute_nodes": "gauge",
            "lancompute_node_workers": "gauge",
            "lancompute_node_in_flight": "gauge",
            "lancompute_node_completed": "counter",
            "lancompute_node_heartbeat_age_seconds": "gauge",
            "lancompute_unauthorized": "counter",
        ]
        #expect(families.mapValues(\.type) == expected)
    }

    @Test func counterSamplesCarryStageAndOutcome() throws {
        let families = try Self.parse(Self.sampleMetrics().prometheusText())
        let items = try #require(families["lancompute_stage_items"])
        func value(_ stage: String, _ outcome: String) -> Double? {
            items.samples.first {
                $0.name == "lancompute_stage_items_total" && $0.labels == ["pipeline": "thumbs", "stage": stage, "outcome": outcome]
            }?.value
        }
        #expect(value("resize", "received") == 4)
        #expect(value("resize", "completed") == 3)
        #expect(value("resize", "failed") == 1)
        #expect(value("resize", "retried") == 1)
        #expect(value("upload", "dead_lettered") == 1)
        #expect(value("upload", "completed") == 0)
        #expect(items.samples.count == 10)
    }

    @Test func gaugesCarryCurrentValues() throws {
        let families = try Self.parse(Self.sampleMetrics().prometheusText())
        let queued = try #require(families["lancompute_stage_queued"]).samples
        #expect(queued.first { $0.labels["stage"] == "upload" }?.value == 7)
        let inFlight = try #require(families["lancompute_stage_in_flight"]).samples
        #expect(inFlight.first { $0.labels["stage"] == "resize" }?.value == 3)
        #expect(families["lancompute_nodes"]?.samples.first?.value == 1)
        let node = ["pipeline": "thumbs", "node": "n1", "host": "alpha"]
        #expect(families["lancompute_node_workers"]?.samples.first?.labels == node)
        #expect(families["lancompute_node_workers"]?.samples.first?.value == 4)
        #expect(families["lancompute_node_in_flight"]?.samples.first?.value == 2)
        #expect(families["lancompute_node_completed"]?.samples.first?.value == 11)
        #expect(families["lancompute_node_heartbeat_age_seconds"]?.samples.first?.value == 0.25)
    }

    @Test func latencyHistogramBucketsAreCumulative() throws {
        let families = try Self.parse(Self.sampleMetrics().prometheusText())
        let samples = try #require(families["lancompute_stage_latency_seconds"]).samples
            .filter { $0.labels["stage"] == "resize" }
        func bucket(_ bound: String) -> Double? {
            samples.first { $0.name == "lancompute_stage_latency_seconds_bucket" && $0.labels["le"] == bound }?.value
        }
        #expect(bucket("0.001") == 0)
        #expect(bucket("0.005") == 1)
        #expect(bucket("0.05") == 2)
        #expect(bucket("1") == 2)
        #expect(bucket("2.5") == 3)
        #expect(bucket("+Inf") == 3)
        #expect(samples.first { $0.name == "lancompute_stage_latency_seconds_count" }?.value == 3)
        let sum = try #require(samples.first { $0.name == "lancompute_stage_latency_seconds_sum" }?.value)
        #expect(abs(sum - 2.043) < 1e-9)
        #expect(samples.filter { $0.name.hasSuffix("_bucket") }.count == PipelineMetrics.latencyBucketBounds.count + 1)
    }

    @Test func labelValuesAreEscaped() throws {
        let awkward = "we\"ird\\stage\nname"
        let metrics = PipelineMetrics(pipeline: "p", stageNames: [awkward])
        metrics.itemReceived(stage: awkward)
        let families = try Self.parse(metrics.prometheusText())
        let received = families["lancompute_stage_items"]?.samples.first { $0.labels["outcome"] == "received" }
        #expect(received?.labels["stage"] == awkward)
        #expect(received?.value == 1)
    }

    @Test func anEmptyPipelineStillParses() throws {
        let families = try Self.parse(PipelineMetrics(pipeline: "empty", stageNames: []).prometheusText())
        #expect(families["lancompute_nodes"]?.samples.first?.value == 0)
        #expect(families["lancompute_stage_items"]?.samples.isEmpty == true)
    }

    @Test func theGrafanaDashboardQueriesOnlyExposedMetrics() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/grafana-dashboard.json")
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= panels.count)

        let exposition = Self.sampleMetrics().prometheusText()
        let exposed = Set(exposition.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
            $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
        let pattern = try Regex("lancompute_[a-z_]+")
        var used: Set<String> = []
        for expression in expressions {
            for match in expression.matches(of: pattern) { used.insert(String(expression[match.range])) }
        }
        #expect(!used.isEmpty)
        #expect(used.subtracting(exposed).isEmpty, "the dashboard queries metrics nobody exposes: \(used.subtracting(exposed))")
        for required in ["lancompute_stage_items_total", "lancompute_stage_queued", "lancompute_stage_in_flight",
                         "lancompute_stage_latency_seconds_bucket", "lancompute_node_heartbeat_age_seconds"] {
            #expect(used.contains(required), "no panel shows \(required)")
        }
    }
}
