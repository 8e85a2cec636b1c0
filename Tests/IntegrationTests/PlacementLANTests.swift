// Placement across simulated hosts: `spread` over hosts running different numbers of worker processes, and `requires` on a GPU model.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3)))
struct PlacementLANTests {
    /// Writes each item back prefixed with the name of the host that ran it, after `delay` seconds.
    static func tagScript(delay: Double) -> String {
        """
        import socket, sys, time
        host = socket.gethostname()
        for line in sys.stdin:
            time.sleep(\(delay))
            sys.stdout.write(host + " " + line)
            sys.stdout.flush()
        """
    }

    /// A pipeline over `count` lines whose one stage tags each item with its host.
    static func writePipeline(in harness: ProcessHarness, count: Int, delay: Double, stageKeys: String) throws -> String {
        try tagScript(delay: delay).write(toFile: harness.path("tag.py"), atomically: true, encoding: .utf8)
        try ((1...count).map { "item \($0)" }.joined(separator: "\n") + "\n")
            .write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: placement
            source:
              file: input.txt
            stages:
              - name: tag
                exec:
                  command: [python3, -u, \(harness.path("tag.py"))]
            \(stageKeys)
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: harness.path("placement.yaml"), atomically: true, encoding: .utf8)
        return harness.path("placement.yaml")
    }

    /// `argv` run on simulated host `host` under the host name `name`: a UTS namespace of its own,
    /// as a separate machine has, so the worker's fingerprint and its children see that name.
    static func onHost(_ lan: LANHosts, _ host: Int, named name: String, _ argv: [String]) -> [String] {
        lan.command(on: host, ["/usr/bin/unshare", "--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"", name] + argv)
    }

    static func startBroker(_ lan: LANHosts, _ harness: ProcessHarness, topology: String) throws -> ChildProcess {
        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", topology, "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "none", "--insecure", "--no-announce",
        ]))
        #expect(broker.waitForErrorContaining("listening on", timeout: .seconds(20)), "\(harness.transcripts)")
        return broker
    }

    static func worker(_ lan: LANHosts, _ harness: ProcessHarness, host: Int, named name: String, index: Int,
                       environment: [String: String] = [:]) throws -> ChildProcess {
        try harness.start("worker-\(name)-\(index)", LANHosts.ip, onHost(lan, host, named: name, [
            CLI.path, "worker", "--broker", "tcp://\(lan.address(1)):5555", "--insecure",
        ]), environment: environment)
    }

    /// How many output lines each host wrote.
    static func countsByHost(_ path: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in RunCommandTests.lines(path) {
            if let host = line.split(separator: " ").first { counts[String(host), default: 0] += 1 }
        }
        return counts
    }

    static var unshareAvailable: Bool { LANHosts.available && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") }

    @Test(.enabled(if: unshareAvailable, "needs Linux, root, iproute2 and unshare"))
    func spreadGivesAHostWithThreeWorkersAboutAsManyItemsAsAHostWithOne() throws {
        let lan = try LANHosts(count: 3)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let count = 60
        // credit 1: each worker process holds only the item it runs.
        let topology = try Self.writePipeline(in: harness, count: count, delay: 0.1, stageKeys: "    credit: 1\n    spread: true")
        let broker = try Self.startBroker(lan, harness, topology: topology)
        let suffix = lan.suffix.prefix(6)
        _ = try Self.worker(lan, harness, host: 3, named: "one-\(suffix)", index: 1)
        for index in 1...3 { _ = try Self.worker(lan, harness, host: 2, named: "three-\(suffix)", index: index) }
        #expect(broker.wait(timeout: .seconds(90)) == 0, "\(harness.transcripts)")
        let counts = Self.countsByHost(harness.path("out.txt"))
        #expect(counts.values.reduce(0, +) == count, "\(counts)")
        // By processes the host with three would take about 45 of the 60; by hosts, about 30 each.
        let one = counts["one-\(suffix)", default: 0]
        let three = counts["three-\(suffix)", default: 0]
        #expect((22...38).contains(one) && (22...38).contains(three), "items by host: \(counts)\n\(harness.transcripts)")
    }

    @Test(.enabled(if: unshareAvailable, "needs Linux, root, iproute2 and unshare"))
    func onlyTheHostWithTheRequiredGPUModelServesTheStage() throws {
        let lan = try LANHosts(count: 3)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let count = 20
        let topology = try Self.writePipeline(in: harness, count: count, delay: 0, stageKeys: """
                requires: {gpu-model: "rtx 4090", min-gpu-memory: 16GiB}
            """)
        let broker = try Self.startBroker(lan, harness, topology: topology)
        let big = try NodesCommandTests.fakeNvidiaSMI(in: harness, name: "big-bin", script: "echo '0, NVIDIA GeForce RTX 4090, 24564, 512, 0'")
        let small = try NodesCommandTests.fakeNvidiaSMI(in: harness, name: "small-bin", script: "echo '0, NVIDIA GeForce RTX 4090 Laptop, 8188, 0, 0'")
        let suffix = lan.suffix.prefix(6)
        let other = try Self.worker(lan, harness, host: 3, named: "small-\(suffix)", index: 1,
                                    environment: ["PATH": NodesCommandTests.path(with: small)])
        #expect(other.waitForErrorContaining("not serving stage tag", timeout: .seconds(30)), "\(harness.transcripts)")
        #expect(other.standardError.contains(
            "needs a GPU whose model contains \"rtx 4090\" with at least 16GiB of memory, worker has NVIDIA GeForce RTX 4090 Laptop 8188MiB"),
            "\(harness.transcripts)")
        _ = try Self.worker(lan, harness, host: 2, named: "big-\(suffix)", index: 1, environment: ["PATH": NodesCommandTests.path(with: big)])
        #expect(broker.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(Self.countsByHost(harness.path("out.txt")) == ["big-\(suffix)": count], "\(harness.transcripts)")
    }
}
