// A running worker's GPU use changes (its fake nvidia-smi prints new figures): `lancompute nodes` shows the new ones.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct FingerprintRefreshTests {
    @Test func nodesShowsTheGPUUseAWorkerRefreshedWhileRunning() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        // A pull source never ends, so the broker keeps serving until it is told to stop.
        try """
            version: 1
            name: refresh
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: upper
                builtin: upper
              - name: tail
                builtin: identity
                from: upper
                chain: false
            sink:
              file: out.txt
            """.write(toFile: harness.path("refresh.yaml"), atomically: true, encoding: .utf8)
        let dispatch = "tcp://127.0.0.1:\(try DashboardBrowserTests.freePort())"
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("refresh.yaml"), "--bind", dispatch,
            "--aggregator", "tcp://127.0.0.1:\(try DashboardBrowserTests.freePort())", "--events", "none",
        ])
        #expect(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")

        // The fake nvidia-smi prints what the test writes into gpu.csv.
        let figures = harness.path("gpu.csv")
        func write(_ line: String) throws {
            try "\(line)\n".write(toFile: figures, atomically: true, encoding: .utf8)
        }
        try write("0, NVIDIA Fake L4, 23034, 1024, 3")
        let gpuBin = try NodesCommandTests.fakeNvidiaSMI(in: harness, name: "gpu-bin", script: "cat '\(figures)'")
        try harness.lancompute("worker", ["worker", "--broker", dispatch, "--label", "zone=lab"],
                               environment: ["PATH": NodesCommandTests.path(with: gpuBin)])

        var attempt = 0
        /// The node's capabilities once `condition` holds for them, within `timeout`; the last ones seen otherwise.
        func capabilities(within timeout: Duration, until condition: ([String: String]) -> Bool) throws -> [String: String] {
            var latest: [String: String] = [:]
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                attempt += 1
                let query = try harness.lancompute("nodes-\(attempt)", ["nodes", dispatch, "--json"])
                #expect(query.wait(timeout: .seconds(20)) == 0, "\(harness.transcripts)")
                let json = try JSONSerialization.jsonObject(with: Data(query.standardOutput.utf8)) as? [String: Any]
                let nodes = json?["nodes"] as? [[String: Any]] ?? []
                // Both stages registered: the refresh has to reach every worker of the node.
                if nodes.count == 1, (nodes[0]["stages"] as? [String])?.count == 2 {
                    latest = nodes[0]["capabilities"] as? [String: String] ?? [:]
                    if condition(latest) { return latest }
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
            return latest
        }

        let first = try capabilities(within: .seconds(30)) { $0["gpu.0.utilization"] == "3" }
        #expect(first["gpu.0.utilization"] == "3", "\(first) \(harness.transcripts)")
        #expect(first["gpu.0.memory.used"] == String(1024 << 20))

        try write("0, NVIDIA Fake L4, 23034, 8192, 87")
        // nvidia-smi runs every 10 s; the refresh follows the reading within 100 ms.
        let changed = try capabilities(within: .seconds(30)) { $0["gpu.0.utilization"] == "87" }
        #expect(changed["gpu.0.utilization"] == "87", "\(changed) \(harness.transcripts)")
        #expect(changed["gpu.0.memory.used"] == String(8192 << 20))
        // What placement decided on at READY stays as announced.
        #expect(changed["gpu.memory"] == String(23034 << 20) && changed["gpu.model"] == "NVIDIA Fake L4")

        broker.signal(SIGTERM)
        #expect(broker.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
    }
}
