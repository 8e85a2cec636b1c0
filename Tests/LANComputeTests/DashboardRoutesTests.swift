// Checks the dashboard's routes in process (HummingbirdTesting), and the state and graph they serve.

import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct DashboardRoutesTests {
    static func application(_ state: DashboardState, access: DashboardAccess = .open) -> some ApplicationProtocol {
        Application(router: DashboardServer.router(state: state, access: access))
    }

    static let snapshot = #"{"type":"metrics","seq":7,"ts":10.5,"pipeline":"p","stages":[{"name":"a"}],"nodes":[]}"#

    @Test func thePageAndItsAssetsAreServedFromHereAlone() async throws {
        try await Self.application(DashboardState(origin: "t")).test(.router) { client in
            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let html = String(buffer: page.body)
            #expect(html.contains(#"<script src="dashboard.js">"#) && html.contains(#"href="dashboard.css""#))
            for (path, type) in [("/dashboard.js", "text/javascript; charset=utf-8"), ("/dashboard.css", "text/css; charset=utf-8")] {
                let asset = try await client.execute(uri: path, method: .get)
                #expect(asset.status == .ok)
                #expect(asset.headers[.contentType] == type)
                let text = String(buffer: asset.body).replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
                #expect(!text.contains("http://") && !text.contains("https://"), "\(path) names no other origin")
            }
        }
    }

    @Test func metricsHealthAndStateAreServed() async throws {
        let state = DashboardState(origin: "broker")
        try await Self.application(state).test(.router) { client in
            let status1 = try await client.execute(uri: "/metrics", method: .get).status
            #expect(status1 == .notFound, "no exposition yet: a remote dashboard")
            state.setExposition("lancompute_nodes{pipeline=\"p\"} 0\n")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType] == DashboardServer.expositionContentType)
            #expect(String(buffer: metrics.body) == "lancompute_nodes{pipeline=\"p\"} 0\n")
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(String(buffer: health.body) == "ok\n")
            let head = try await client.execute(uri: "/healthz", method: .head)
            #expect(head.status == .ok && head.body.readableBytes == 0)

            state.accept(topic: "metrics", json: Self.snapshot)
            let body = try await client.execute(uri: "/api/state", method: .get)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: body.body).utf8)) as? [String: Any])
            #expect(object["origin"] as? String == "broker")
            #expect((object["snapshots"] as? [[String: Any]])?.first?["seq"] as? Int == 7)
        }
    }

    @Test func theServerIsReadOnly() async throws {
        try await Self.application(DashboardState(origin: "t")).test(.router) { client in
            for method in [HTTPRequest.Method.post, .put, .delete] {
                let response = try await client.execute(uri: "/metrics", method: method)
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD")
            }
            let status2 = try await client.execute(uri: "/nowhere", method: .get).status
            #expect(status2 == .notFound)
        }
    }

    @Test func aTokenGuardsEverythingButHealthAndTheStaticAssets() async throws {
        try await Self.application(DashboardState(origin: "t"), access: .bearerToken("s3cret")).test(.router) { client in
            let status3 = try await client.execute(uri: "/", method: .get).status
            #expect(status3 == .unauthorized)
            let status4 = try await client.execute(uri: "/api/state", method: .get).status
            #expect(status4 == .unauthorized)
            let status5 = try await client.execute(uri: "/api/state?token=wrong", method: .get).status
            #expect(status5 == .unauthorized)
            let status6 = try await client.execute(uri: "/api/state?token=s3cret", method: .get).status
            #expect(status6 == .ok)
            let status7 = try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer s3cret"]).status
            #expect(status7 == .ok)
            let status8 = try await client.execute(uri: "/healthz", method: .get).status
            #expect(status8 == .ok)
            let status9 = try await client.execute(uri: "/dashboard.js", method: .get).status
            #expect(status9 == .ok)
        }
    }

    @Test func theStateKeepsReplaysOnceAndBoundsItsLists() throws {
        let state = DashboardState(origin: "t")
        state.accept(topic: "metrics", json: Self.snapshot)
        state.accept(topic: "metrics", json: Self.snapshot)  // the feed's last-value cache, replayed
        for index in 0..<(DashboardState.eventLimit + 5) {
            state.accept(topic: "event.item.dead-lettered", json: #"{"type":"event.item.dead-lettered","seq":\#(index + 1),"ts":1,"stage":"a","item_id":"\#(index)","attempts":3,"reason":"r"}"#)
        }
        state.accept(topic: "event.worker.ready", json: #"{"type":"event.worker.ready","seq":1,"ts":1,"id":"w","node":"n1","stage":"a","credit":1}"#)
        state.accept(topic: "other", json: "{}")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(state.stateJSON().utf8)) as? [String: Any])
        #expect((object["snapshots"] as? [Any])?.count == 1)
        #expect((object["events"] as? [Any])?.count == DashboardState.eventLimit)
        let letters = try #require(object["dead_letters"] as? [[String: Any]])
        #expect(letters.count == DashboardState.deadLetterLimit)
        #expect(letters.last?["topic"] as? String == "event.item.dead-lettered", "events carry their topic")
        #expect(letters.first?["item_id"] as? String == "5", "the oldest went first")
        #expect(object["node_stages"] as? [String: [String]] == ["n1": ["a"]])
    }

    @Test func aStreamStartsWithTheStateAndMissesNothingAfter() async throws {
        let state = DashboardState(origin: "t")
        state.accept(topic: "metrics", json: Self.snapshot)
        var iterator = state.subscribe().makeAsyncIterator()
        state.accept(topic: "event.node.left", json: #"{"type":"event.node.left","seq":1,"ts":2,"id":"n1","reason":"expired","detail":"d"}"#)
        let first = await iterator.next()
        #expect(first?.event == "state" && first?.json.contains(#""seq":7"#) == true)
        let second = await iterator.next()
        #expect(second?.event == "event" && second?.json.hasPrefix(#"{"topic":"event.node.left""#) == true)
        #expect(second?.serverSentEvent.hasPrefix("event: event\ndata: {") == true && second?.serverSentEvent.hasSuffix("}\n\n") == true)
        #expect(state.finishStreams() == 1)
        #expect(await iterator.next() == nil)
    }

    @Test func theGraphLaysStagesOutInColumnsByTheirLongestPath() throws {
        let yaml = """
            version: 1
            name: diamond
            source: {file: in.txt}
            stages:
              - {name: left, builtin: upper}
              - {name: right, builtin: upper, from: left}
              - {name: join, builtin: upper, from: [left, right]}
            sink: {file: out.txt}
            """
        let topology = try TopologyLoader.load(yaml: yaml, file: "diamond.yaml")
        let graph = DashboardGraph(topology: topology)
        #expect(graph.columns[0] == 1 && graph.columns[1] == 2 && graph.columns[2] == 3, "left, right, then join: its longest path")
        #expect(graph.columns[3] == 4, "the sink after the last stage")
        let svg = graph.svg
        #expect(svg.components(separatedBy: "class=\"edge").count - 1 == graph.edges.count)
        for index in 0..<3 { #expect(svg.contains("id=\"stage-\(index)-rate\"")) }
        #expect(DashboardGraph.escape("<a & \"b\">") == "&lt;a &amp; &quot;b&quot;&gt;")
    }

    @Test func chainsAreOutlinedAndTheirEdgesMarked() throws {
        let yaml = """
            version: 1
            name: chained
            source: {file: in.txt}
            stages:
              - {name: a, builtin: upper}
              - {name: b, builtin: lower, from: a}
              - {name: c, builtin: upper, from: b, chain: false}
            sink: {file: out.txt}
            """
        let graph = DashboardGraph(topology: try TopologyLoader.load(yaml: yaml, file: "chained.yaml"))
        #expect(graph.chains == [[0, 1]])
        let svg = graph.svg
        #expect(svg.contains(#"<rect class="chain" data-chain="a &gt; b""#), "\(svg)")
        #expect(svg.components(separatedBy: #"class="edge chained""#).count - 1 == 1, "only a -> b is inside the chain")
        #expect(graph.jsonText.serialized.contains(#""chains":[[0,1]]"#))
    }
}
