// Whether the in-process workers of `lancompute run` measure and announce their speed: only when a worker of another machine could join.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct RunSpeedBenchmarkTests {
    /// A run that never ends by itself: its source is a PULL socket nobody feeds.
    static func writePipeline(_ harness: ProcessHarness) throws -> String {
        let path = harness.path("serve.yaml")
        try """
            version: 1
            name: serve
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: pass
                builtin: identity
            sink:
              file: out.txt
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The nodes `lancompute nodes` lists once `count` of them are in, by node id.
    /// `query` starts `lancompute nodes DISPATCH --json` under the name it is given.
    static func nodes(_ harness: ProcessHarness, count: Int, query start: (String) throws -> ChildProcess) throws -> [String: [String: String]] {
        var found: [String: [String: String]] = [:]
        let deadline = ContinuousClock.now + .seconds(30)
        var attempt = 0
        while ContinuousClock.now < deadline {
            attempt += 1
            let query = try start("nodes-\(attempt)")
            #expect(query.wait(timeout: .seconds(20)) == 0, "\(harness.transcripts)")
            let json = try JSONSerialization.jsonObject(with: Data(query.standardOutput.utf8)) as? [String: Any]
            let nodes = json?["nodes"] as? [[String: Any]] ?? []
            found = [:]
            for node in nodes {
                if let id = node["node"] as? String, let capabilities = node["capabilities"] as? [String: String] { found[id] = capabilities }
            }
            if found.count >= count { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return found
    }

    @Test func aRunOnlyThisMachineCanJoinSkipsTheBenchmarkAndAWorkerThatJoinsStillRunsIt() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try Self.writePipeline(harness)
        let dispatch = harness.ipc("dispatch")
        let run = try harness.lancompute("run", ["run", pipeline, "--workers", "1", "--bind", dispatch, "--events", "none", "--state", "none"])
        #expect(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")
        // A worker process of its own on the same machine: it knows nothing of the run's reach.
        try harness.lancompute("worker", ["worker", "--broker", dispatch, "--label", "zone=own"])
        let nodes = try Self.nodes(harness, count: 2) { try harness.lancompute($0, ["nodes", dispatch, "--json"]) }
        try #require(nodes.count == 2, "\(nodes) \(harness.transcripts)")
        let local = try #require(nodes.first { $0.key.contains("-local-") }, "\(nodes)")
        #expect(local.value["speed"] == nil, "the run's own worker ran the benchmark: \(local.value)")
        #expect(local.value["cores"] != nil && local.value["arch"] != nil, "the other facts are announced: \(local.value)")
        let own = try #require(nodes.first { $0.value["label.zone"] == "own" }, "\(nodes)")
        #expect(Double(own.value["speed"] ?? "") ?? 0 > 0 && own.value["speed.unit"] == "MB/s", "\(own.value)")
        run.signal(SIGTERM)
        #expect(run.wait(timeout: .seconds(30)) != nil, "\(harness.transcripts)")
    }

    @Test(.enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
    func aRunOtherMachinesCanJoinAnnouncesItsWorkersSpeed() throws {
        let lan = try LANHosts(count: 1)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try Self.writePipeline(harness)
        let run = try harness.start("run", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "run", pipeline, "--workers", "1", "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "none", "--insecure", "--no-announce", "--state", "none",
        ]))
        let nodes = try Self.nodes(harness, count: 1) {
            try harness.start($0, LANHosts.ip, lan.command(on: 1, [CLI.path, "nodes", "tcp://\(lan.address(1)):5555", "--json"]))
        }
        let local = try #require(nodes.first { $0.key.contains("-local-") }, "\(nodes) \(harness.transcripts)")
        #expect(Double(local.value["speed"] ?? "") ?? 0 > 0 && local.value["speed.unit"] == "MB/s", "\(local.value)")
        run.signal(SIGTERM)
        #expect(run.wait(timeout: .seconds(30)) != nil, "\(harness.transcripts)")
    }
}
