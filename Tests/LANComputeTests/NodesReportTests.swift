// What `mmi.nodes` reports: nodes from the broker core (with refreshed capabilities), their JSON and table; the refresh frame.

import Foundation
import Testing
@testable import LANCompute

@Suite struct NodesReportTests {
    @Test func aRefreshHeartbeatRoundTripsAndPlainHeartbeatsStayRFC7() throws {
        let refresh = WorkerMessage.refresh(capabilities: Capabilities(["load.1": "0.50"]))
        #expect(refresh.frames.count == 4)
        #expect(try WorkerMessage(frames: refresh.frames) == refresh)
        #expect(refresh.commandName == "HEARTBEAT")
        #expect(try WorkerMessage(frames: WorkerMessage.heartbeat.frames) == .heartbeat)
        #expect(throws: WireError.self) { try WorkerMessage(frames: refresh.frames + [[]]) }
        #expect(throws: WireError.self) { try WorkerMessage(frames: [[], MDP.workerHeader, [0x04], [7, 1]]) }
    }

    static func capabilities(node: String, gpus: Int) -> Capabilities {
        var capabilities = lanCompute(credit: 4, node: node, labels: ["zone": node == "a" ? "lab" : "office"])
        capabilities["arch"] = "arm64"
        capabilities["os"] = "macos"
        capabilities["cores"] = "10"
        capabilities["memory"] = String(32 << 30)
        capabilities["gpu.count"] = String(gpus)
        capabilities["memory.available"] = "100"
        if gpus > 0 {
            capabilities["gpu"] = "true"
            capabilities["gpu.model"] = "Apple M2 Pro"
            capabilities["gpu.memory"] = String(24 << 30)
        }
        return capabilities
    }

    @Test func theCoreReportsEachNodeWithItsStagesAndRefreshedFacts() throws {
        let driver = CoreDriver([StageSpec(name: "first", handler: .external), StageSpec(name: "second", handler: .external, from: ["first"])])
        driver.ready([1], "first", Self.capabilities(node: "a", gpus: 1))
        driver.ready([2], "second", Self.capabilities(node: "a", gpus: 1))
        driver.ready([3], "second", Self.capabilities(node: "b", gpus: 0))
        driver.feed(.accepted(id: 7, payload: [1]))
        driver.advance(.milliseconds(200))
        // Through either DEALER of node a; a refresh may not change what placement decided on.
        driver.feed(.worker(peer: [2], message: .refresh(capabilities: Capabilities(["memory.available": "42", "gpu": "false", "label.zone": "x"]))))
        #expect(driver.protocolErrors.isEmpty)

        let report = NodesReport(pipeline: "t", summaries: driver.core.nodeSummaries(now: driver.now))
        #expect(report.nodes.map(\.node) == ["a", "b"])
        let a = report.nodes[0]
        #expect(a.stages == ["first", "second"])
        #expect(a.workers == 2)
        #expect(a.inFlight == 1)
        #expect(a.heartbeatAgeMs == 0)
        #expect(a.gpus == 1 && a.gpuModel == "Apple M2 Pro" && a.gpuMemoryBytes == 24 << 30)
        #expect(a.capabilities["memory.available"] == "42")
        #expect(a.capabilities["gpu"] == "true")
        #expect(a.labels == ["zone": "lab"])
        let b = report.nodes[1]
        #expect(b.stages == ["second"] && b.gpus == 0 && b.heartbeatAgeMs == 200)
        #expect(b.capabilities["memory.available"] == "100")

        #expect(try NodesReport(json: report.jsonData()) == report)
        let json = String(decoding: try report.jsonData(), as: UTF8.self)
        #expect(json.contains("\"heartbeat_age_ms\":200") && json.contains("\"in_flight\":1"), "\(json)")
    }

    @Test func aRefreshFromAnUnregisteredPeerIsRefused() {
        let driver = CoreDriver([StageSpec(name: "first", handler: .external)])
        driver.feed(.worker(peer: [9], message: .refresh(capabilities: Capabilities(["load.1": "1"]))))
        #expect(driver.protocolErrors == [.outOfOrder])
        #expect(driver.disconnects([9]) == 1)
    }

    @Test func theTableShowsOneLinePerNode() {
        let report = NodesReport(pipeline: "t", nodes: [
            .init(node: "a", host: "mac", stages: ["first", "second"], workers: 2, inFlight: 3, completed: 10, heartbeatAgeMs: 120,
                  capabilities: Self.capabilities(node: "a", gpus: 1)),
            .init(node: "bb", host: "pc", stages: ["second"], workers: 1, inFlight: 0, completed: 0, heartbeatAgeMs: 5,
                  capabilities: Capabilities()),
        ])
        let lines = report.table()
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("NODE  HOST"))
        #expect(lines[1].contains("arm64/macos") && lines[1].contains("1 x Apple M2 Pro 24.0 GiB") && lines[1].contains("first,second"))
        #expect(lines[2].contains("?/?") && lines[2].hasSuffix("5 ms"))
    }

    @Test func eachWorkersBreakerShowsInTheJSONAndTheTable() throws {
        let policy = BreakerPolicy(enabled: true, failures: 2, window: 4, cooldown: .seconds(30))
        let driver = CoreDriver([StageSpec(name: "work", handler: .external, maxAttempts: 5, breaker: policy),
                                 StageSpec(name: "tail", handler: .external, from: ["work"], breaker: .off)])
        driver.ready([1], "work", lanCompute(credit: 2, node: "bad"))
        driver.ready([2], "work", lanCompute(credit: 1, node: "good"))
        driver.ready([3], "tail", lanCompute(credit: 1, node: "good"))
        for id: UInt64 in 1...3 { driver.feed(.accepted(id: id, payload: [1])) }
        driver.completed([2], 3)
        driver.failed([1], 1)
        driver.failed([1], 2)
        driver.advance(.milliseconds(4500))
        let report = NodesReport(pipeline: "t", summaries: driver.core.nodeSummaries(now: driver.now))
        #expect(report.nodes.map(\.node) == ["bad", "good"])
        #expect(report.nodes[0].breakers == [NodesReport.Breaker(stage: "work", state: "open", probeInMs: 25_500, failures: 2, outcomes: 2)])
        #expect(report.nodes[1].breakers == [NodesReport.Breaker(stage: "work", state: "closed", failures: 0, outcomes: 1)],
                "tail has breaker: false")
        let json = String(decoding: try report.jsonData(), as: UTF8.self)
        #expect(json.contains(#""breakers":[{"failures":2,"outcomes":2,"probe_in_ms":25500,"stage":"work","state":"open"}]"#))
        #expect(try NodesReport(json: report.jsonData()) == report)
        let table = report.table()
        #expect(table[0].contains("BREAKERS"))
        #expect(table[1].contains("work open 26s"))
        #expect(table[2].contains("work closed"))
    }
}

extension NodesReportTests {
    @Test func eachNodeShowsItsWorkersCreditsAndTheRoundTripTheyMeasured() throws {
        let driver = CoreDriver([StageSpec(name: "first", handler: .external), StageSpec(name: "second", handler: .external, from: ["first"])])
        driver.ready([1], "first", Self.capabilities(node: "a", gpus: 0))
        driver.ready([2], "second", Self.capabilities(node: "a", gpus: 0))
        driver.ready([3], "second", Self.capabilities(node: "b", gpus: 0))
        driver.feed(.worker(peer: [1], message: .refresh(capabilities: .creditRefresh(probe: nil, credit: 96, roundTrip: .microseconds(101_260)))))
        let report = NodesReport(pipeline: "t", summaries: driver.core.nodeSummaries(now: driver.now))
        #expect(report.nodes[0].credits == ["first": 96, "second": 4])
        #expect(report.nodes[0].rttMs == 101.3)
        #expect(report.nodes[0].capabilities["credit"] == "96" || report.nodes[0].capabilities["credit"] == "4")
        #expect(report.nodes[1].credits == ["second": 4])
        #expect(report.nodes[1].rttMs == nil)
        let json = String(decoding: try report.jsonData(), as: UTF8.self)
        #expect(json.contains("\"credits\":{\"first\":96,\"second\":4}") && json.contains("\"rtt_ms\":101.3"), "\(json)")
        #expect(try NodesReport(json: report.jsonData()) == report)

        let lines = report.table()
        #expect(lines[0].contains("IN-FLIGHT  CREDIT") && lines[0].contains("RTT"))
        #expect(lines[1].contains("first=96,second=4") && lines[1].contains("101.3 ms"))
        #expect(lines[2].contains("  4  ") && lines[2].contains("  -  "))
        // An older broker's report has neither: it still decodes, and the table says so.
        let old = try NodesReport(json: Data(#"{"schema":1,"pipeline":"t","nodes":[{"node":"x","host":"h","stages":["s"],"workers":1,"in_flight":0,"completed":0,"heartbeat_age_ms":1,"gpus":0,"labels":{},"capabilities":{}}]}"#.utf8))
        #expect(old.nodes[0].credits == nil && old.nodes[0].rttMs == nil)
        #expect(old.table()[1].contains("  -  "))
    }
}
