// Checks PipelineMetrics: counters, gauges, HDR percentiles, rates and the snapshot's JSON shape.

import Foundation
import Testing
@testable import LANCompute

@Suite struct PipelineMetricsTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func countersAndGaugesAppearInTheSnapshot() throws {
        let metrics = PipelineMetrics(pipeline: "wordcount", stageNames: ["split", "count"], startedAt: start)
        for _ in 0..<3 { metrics.itemReceived(stage: "split") }
        metrics.itemCompleted(stage: "split", latency: .milliseconds(5))
        metrics.itemCompleted(stage: "split", latency: .milliseconds(7))
        metrics.itemFailed(stage: "split")
        metrics.itemRetried(stage: "split")
        metrics.itemDeadLettered(stage: "split")
        metrics.setQueued(stage: "count", 5)
        metrics.setInFlight(stage: "count", 2)

        let snapshot = metrics.snapshot(at: start.addingTimeInterval(1))
        #expect(snapshot.pipeline == "wordcount")
        #expect(snapshot.stages.map(\.name) == ["split", "count"])
        let split = snapshot.stages[0]
        #expect(split.received == 3)
        #expect(split.completed == 2)
        #expect(split.failed == 1)
        #expect(split.retried == 1)
        #expect(split.deadLettered == 1)
        #expect(snapshot.stages[1].queued == 5)
        #expect(snapshot.stages[1].inFlight == 2)
        #expect(snapshot.stages[1].completed == 0)
        #expect(snapshot.stages[1].latencyMs == MetricsSnapshot.Latency())
        #expect(snapshot.ts == 1_800_000_001)
    }

    @Test func countersAreCumulativeAcrossSnapshots() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        metrics.itemCompleted(stage: "a", latency: .milliseconds(1))
        _ = metrics.snapshot(at: start.addingTimeInterval(1))
        metrics.itemCompleted(stage: "a", latency: .milliseconds(1))
        #expect(metrics.snapshot(at: start.addingTimeInterval(2)).stages[0].completed == 2)
    }

    @Test func percentilesComeFromTheHistogram() throws {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        for millisecond in 1...1000 {
            metrics.itemCompleted(stage: "a", latency: .milliseconds(millisecond))
        }
        let latency = metrics.snapshot(at: start.addingTimeInterval(1)).stages[0].latencyMs
        // Three significant digits: within 0.1 % of the exact value, plus the bucket's rounding.
        #expect(abs(latency.p50 - 500) <= 1)
        #expect(abs(latency.p90 - 900) <= 1)
        #expect(abs(latency.p99 - 990) <= 1)
        #expect(latency.max == 1000)
    }

    @Test func subMillisecondLatenciesKeepTheirPrecision() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        metrics.itemCompleted(stage: "a", latency: .microseconds(250))
        let latency = metrics.snapshot(at: start.addingTimeInterval(1)).stages[0].latencyMs
        #expect(latency.p50 == 0.25)
        #expect(latency.max == 0.25)
    }

    @Test func extremeLatenciesAreClampedNotFatal() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        metrics.itemCompleted(stage: "a", latency: .seconds(-5))
        metrics.itemCompleted(stage: "a", latency: .seconds(Int64.max))
        let stage = metrics.snapshot(at: start.addingTimeInterval(1)).stages[0]
        #expect(stage.completed == 2)
        #expect(stage.latencyMs.max > 3_600_000)
        #expect(metrics.prometheusText().contains(#"lancompute_stage_latency_seconds_bucket{pipeline="p",stage="a",le="0.001"} 1"#))
    }

    @Test func rateCoversTheIntervalSinceThePreviousSnapshot() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        for _ in 0..<10 { metrics.itemCompleted(stage: "a", latency: .milliseconds(1)) }
        #expect(metrics.snapshot(at: start.addingTimeInterval(2)).stages[0].rate == 5)
        for _ in 0..<3 { metrics.itemCompleted(stage: "a", latency: .milliseconds(1)) }
        #expect(metrics.snapshot(at: start.addingTimeInterval(3)).stages[0].rate == 3)
        #expect(metrics.snapshot(at: start.addingTimeInterval(4)).stages[0].rate == 0)
    }

    @Test func aSnapshotAtTheSameInstantKeepsTheRate() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        for _ in 0..<4 { metrics.itemCompleted(stage: "a", latency: .milliseconds(1)) }
        let at = start.addingTimeInterval(1)
        #expect(metrics.snapshot(at: at).stages[0].rate == 4)
        #expect(metrics.snapshot(at: at).stages[0].rate == 4)
    }

    @Test func unknownStagesAreAddedInOrderOfFirstUse() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        metrics.itemReceived(stage: "late")
        metrics.itemReceived(stage: "a")
        let stages = metrics.snapshot(at: start.addingTimeInterval(1)).stages
        #expect(stages.map(\.name) == ["a", "late"])
        #expect(stages.map(\.received) == [1, 1])
    }

    @Test func nodesAreUpsertedAndRemovedById() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: [], startedAt: start)
        metrics.updateNode(NodeMetrics(id: "n1", host: "alpha", workers: 2))
        metrics.updateNode(NodeMetrics(id: "n2", host: "beta", workers: 1))
        metrics.updateNode(NodeMetrics(id: "n1", host: "alpha", workers: 4, completed: 9))
        var nodes = metrics.snapshot(at: start.addingTimeInterval(1)).nodes
        #expect(nodes.map(\.id) == ["n1", "n2"])
        #expect(nodes[0].workers == 4)
        #expect(nodes[0].completed == 9)
        metrics.removeNode(id: "n1")
        metrics.removeNode(id: "unknown")
        nodes = metrics.snapshot(at: start.addingTimeInterval(2)).nodes
        #expect(nodes.map(\.id) == ["n2"])
    }

    @Test func nodesLeavingTogetherLeaveTheOthersUpdatableInPlace() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: [], startedAt: start)
        for index in 0..<6 { metrics.updateNode(NodeMetrics(id: "n\(index)", host: "h", workers: 1)) }
        metrics.removeNodes(["n0", "n3", "n9"])
        // The nodes after the removed ones moved: an update must still replace, not add.
        metrics.updateNode(NodeMetrics(id: "n5", host: "h", workers: 7))
        metrics.updateNode(NodeMetrics(id: "n1", host: "h", workers: 3))
        let nodes = metrics.snapshot(at: start.addingTimeInterval(1)).nodes
        #expect(nodes.map(\.id) == ["n1", "n2", "n4", "n5"])
        #expect(nodes.map(\.workers) == [3, 1, 1, 7])
    }

    @Test func snapshotJSONHasExactlyTheDocumentedKeys() throws {
        let metrics = PipelineMetrics(pipeline: "thumbs", stageNames: ["resize"], startedAt: start)
        metrics.itemReceived(stage: "resize")
        metrics.itemCompleted(stage: "resize", latency: .milliseconds(12))
        metrics.updateNode(NodeMetrics(
            id: "mini-1", host: "mac-mini.local", workers: 4, inFlight: 1, completed: 1, heartbeatAgeMs: 120,
            capabilities: ["arch": "arm64", "gpu": "metal"]))
        var snapshot = metrics.snapshot(at: start.addingTimeInterval(1))
        snapshot.seq = 7

        let object = try #require(try JSONSerialization.jsonObject(with: snapshot.jsonData()) as? [String: Any])
        #expect(Set(object.keys) == ["type", "seq", "ts", "pipeline", "stages", "nodes"])
        #expect(object["type"] as? String == "metrics")
        #expect((object["seq"] as? NSNumber)?.intValue == 7)
        #expect(object["pipeline"] as? String == "thumbs")
        let stage = try #require((object["stages"] as? [[String: Any]])?.first)
        #expect(Set(stage.keys) == [
            "name", "received", "completed", "failed", "retried", "dead_lettered", "queued", "in_flight", "rate",
            "latency_ms", "unserved", "breakers_opened",
        ])
        #expect((stage["completed"] as? NSNumber)?.intValue == 1)
        let latency = try #require(stage["latency_ms"] as? [String: Any])
        #expect(Set(latency.keys) == ["p50", "p90", "p99", "max"])
        #expect((latency["max"] as? NSNumber)?.doubleValue == 12)
        let node = try #require((object["nodes"] as? [[String: Any]])?.first)
        #expect(Set(node.keys) == ["id", "host", "workers", "in_flight", "completed", "heartbeat_age_ms", "capabilities"])
        #expect((node["heartbeat_age_ms"] as? NSNumber)?.intValue == 120)
        #expect(node["capabilities"] as? [String: String] == ["arch": "arm64", "gpu": "metal"])
    }

    @Test func snapshotJSONKeepsTheDocumentedKeyOrder() {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        metrics.updateNode(NodeMetrics(id: "n1", host: "h"))
        var snapshot = metrics.snapshot(at: start.addingTimeInterval(1))
        snapshot.seq = 3
        let json = String(decoding: snapshot.jsonData(), as: UTF8.self)
        #expect(json == #"{"type":"metrics","seq":3,"ts":1800000001,"pipeline":"p","stages":[{"name":"a","received":0,"#
            + #""completed":0,"failed":0,"retried":0,"dead_lettered":0,"queued":0,"in_flight":0,"rate":0,"#
            + #""latency_ms":{"p50":0,"p90":0,"p99":0,"max":0},"unserved":false,"breakers_opened":0}],"nodes":[{"id":"n1","host":"h","workers":0,"in_flight":0,"#
            + #""completed":0,"heartbeat_age_ms":0,"capabilities":{}}]}"#)
    }

    @Test func snapshotWithoutSequenceOmitsTheKeyAndRoundTrips() throws {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"], startedAt: start)
        metrics.itemCompleted(stage: "a", latency: .milliseconds(3))
        let snapshot = metrics.snapshot(at: start.addingTimeInterval(0.5))
        let json = String(decoding: snapshot.jsonData(), as: UTF8.self)
        #expect(!json.contains("\"seq\""))
        #expect(try MetricsSnapshot.decode(json: json) == snapshot)
    }

    @Test func decodingRejectsOtherMessageTypes() {
        #expect(throws: DecodingError.self) {
            try MetricsSnapshot.decode(json: #"{"type":"event.node.left","ts":1,"pipeline":"p","stages":[],"nodes":[]}"#)
        }
    }
}
