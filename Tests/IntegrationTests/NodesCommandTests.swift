// `lancompute node` and `lancompute nodes` against a broker with two workers, one with a fake nvidia-smi on its PATH.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct NodesCommandTests {
    /// A directory with an executable `nvidia-smi` script.
    static func fakeNvidiaSMI(in harness: ProcessHarness, name: String, script: String) throws -> String {
        let directory = harness.path(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "#!/bin/sh\n\(script)\n".write(toFile: "\(directory)/nvidia-smi", atomically: true, encoding: .utf8)
        chmod("\(directory)/nvidia-smi", 0o755)
        return directory
    }

    static func path(with directory: String) -> String {
        "\(directory):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")"
    }

    @Test func nodePrintsThisMachinesFingerprintWithTheFakeGPU() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let gpuBin = try Self.fakeNvidiaSMI(in: harness, name: "gpu-bin", script: "echo '0, NVIDIA Fake T4, 15360, 256, 7'")
        let node = try harness.lancompute("node", ["node", "--label", "zone=lab"], environment: ["PATH": Self.path(with: gpuBin)])
        #expect(node.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(node.standardOutput.utf8)) as? [String: Any])
        #expect(json["schema"] as? Int == 1)
        #expect((json["labels"] as? [String: String]) == ["zone": "lab"])
        let gpus = try #require(json["gpus"] as? [[String: Any]])
        #expect(gpus.count == 1)
        #expect(gpus.first?["model"] as? String == "NVIDIA Fake T4")
        #expect(gpus.first?["memory_total_bytes"] as? Int == 15360 << 20)
        let cpu = try #require(json["cpu"] as? [String: Any])
        #expect((cpu["logical_cores"] as? Int ?? 0) >= 1)
        let speed = try #require(json["speed"] as? [String: Any])
        #expect((speed["value"] as? Double ?? 0) > 0 && speed["unit"] as? String == "MB/s")
        #expect(((json["memory"] as? [String: Any])?["total_bytes"] as? Int ?? 0) > 0)
    }

    @Test func nodesListsBothWorkersWithTheirCapabilities() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        // A pull source never ends, so the broker keeps serving until it is told to stop.
        try """
            version: 1
            name: cluster
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: upper
                builtin: upper
              - name: tail
                builtin: identity
                from: upper
            sink:
              file: out.txt
            """.write(toFile: harness.path("cluster.yaml"), atomically: true, encoding: .utf8)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("cluster.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", "none",
        ])
        #expect(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")

        let gpuBin = try Self.fakeNvidiaSMI(in: harness, name: "gpu-bin", script: "echo '0, NVIDIA Fake A40, 46068, 1024, 3'")
        // The other worker's nvidia-smi fails as it does on a machine whose driver is not loaded.
        let brokenBin = try Self.fakeNvidiaSMI(in: harness, name: "broken-bin", script: """
            echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
            exit 9
            """)
        try harness.lancompute("worker-gpu", ["worker", "--broker", dispatch, "--label", "zone=lab", "--label", "rack=7"],
                               environment: ["PATH": Self.path(with: gpuBin)])
        let plain = try harness.lancompute("worker-plain", ["worker", "--broker", dispatch, "--label", "zone=office"],
                                           environment: ["PATH": Self.path(with: brokenBin)])

        var nodes: [[String: Any]] = []
        let deadline = ContinuousClock.now + .seconds(30)
        var attempt = 0
        while ContinuousClock.now < deadline {
            attempt += 1
            let query = try harness.lancompute("nodes-\(attempt)", ["nodes", dispatch, "--json"])
            #expect(query.wait(timeout: .seconds(20)) == 0, "\(harness.transcripts)")
            let json = try JSONSerialization.jsonObject(with: Data(query.standardOutput.utf8)) as? [String: Any]
            nodes = json?["nodes"] as? [[String: Any]] ?? []
            // Each node serves both stages once both of its READYs are in.
            if nodes.count == 2 && nodes.allSatisfy({ ($0["stages"] as? [String])?.count == 2 }) { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        try #require(nodes.count == 2, "\(harness.transcripts)")
        func node(labelled zone: String) throws -> [String: Any] {
            try #require(nodes.first { ($0["labels"] as? [String: String])?["zone"] == zone }, "no node with zone=\(zone): \(nodes)")
        }
        let gpu = try node(labelled: "lab")
        #expect(gpu["gpus"] as? Int == 1)
        #expect(gpu["gpu_model"] as? String == "NVIDIA Fake A40")
        #expect(gpu["gpu_memory_bytes"] as? Int == 46068 << 20)
        #expect(gpu["stages"] as? [String] == ["tail", "upper"])
        #expect(gpu["labels"] as? [String: String] == ["zone": "lab", "rack": "7"])
        let gpuCapabilities = try #require(gpu["capabilities"] as? [String: String])
        #expect(gpuCapabilities["gpu"] == "true")
        #expect(gpuCapabilities["gpu.count"] == "1")
        #expect(gpuCapabilities["gpu.0.utilization"] == "3")
        #expect(gpuCapabilities["cpu.model"] != nil || !FileManager.default.fileExists(atPath: "/proc/cpuinfo"))
        #expect(gpuCapabilities["speed.unit"] == "MB/s")

        let other = try node(labelled: "office")
        #expect(other["gpus"] as? Int == 0)
        let otherCapabilities = try #require(other["capabilities"] as? [String: String])
        #expect(otherCapabilities["gpu"] == "false")
        #expect(otherCapabilities["gpu.count"] == "0")
        #expect(otherCapabilities["arch"] != nil && otherCapabilities["os"] != nil && otherCapabilities["cores"] != nil)
        #expect(plain.standardError.contains("no NVIDIA GPU"), "the failing nvidia-smi's reason is logged: \(plain.transcript)")

        let table = try harness.lancompute("nodes-table", ["nodes", dispatch])
        #expect(table.wait(timeout: .seconds(20)) == 0, "\(harness.transcripts)")
        let lines = table.standardOutput.split(separator: "\n")
        #expect(lines.count == 3, "\(table.standardOutput)")
        #expect(lines.first?.hasPrefix("NODE") == true)
        #expect(table.standardOutput.contains("1 x NVIDIA Fake A40 45.0 GiB"), "\(table.standardOutput)")

        broker.signal(SIGTERM)
        #expect(broker.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
    }

    @Test func nodesWithoutABrokerFailsWithACode() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let query = try harness.lancompute("nodes", ["nodes", harness.ipc("nobody"), "--timeout", "0.5"])
        #expect(query.wait(timeout: .seconds(20)) == 1)
        #expect(query.standardError.contains("LC2040"), "\(query.transcript)")
    }
}
