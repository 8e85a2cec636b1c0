// A cluster of three namespaced hosts formed with no endpoint typed: a GPU stage placed only on
// the host whose (fake) nvidia-smi reports a GPU, the others on both, `nodes` showing the cluster,
// and priorities and deadlines across hosts.

import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(4)))
struct ClusterLANTests {
    /// Host names of the simulated machines, unique per run so that parallel runs never mix.
    struct Names {
        var gpu: String
        var plain: String
        init(_ lan: LANHosts) {
            let suffix = lan.suffix.prefix(6)
            gpu = "gpu-\(suffix)"
            plain = "cpu-\(suffix)"
        }
    }

    /// prep (any host, spread) → infer (needs a GPU) → post (any host, spread); each stage puts the
    /// name of the host that ran it in front of the item, so a sink line reads `post infer prep item N`.
    static func writeClusterPipeline(_ harness: ProcessHarness, count: Int) throws -> String {
        try PlacementLANTests.tagScript(delay: 0.01).write(toFile: harness.path("tag.py"), atomically: true, encoding: .utf8)
        try ((1...count).map { "item \($0)" }.joined(separator: "\n") + "\n")
            .write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        let tag = "exec: {command: [python3, -u, \(harness.path("tag.py"))]}"
        try """
            version: 1
            name: cluster
            source:
              file: input.txt
            stages:
              - name: prep
                \(tag)
                credit: 1
                spread: true
              - name: infer
                \(tag)
                credit: 1
                requires: {gpu: true}
              - name: post
                \(tag)
                credit: 1
                spread: true
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: harness.path("cluster.yaml"), atomically: true, encoding: .utf8)
        return harness.path("cluster.yaml")
    }

    /// A worker on `host` under `name` that finds the broker by `--discover`.
    static func discoveringWorker(_ lan: LANHosts, _ harness: ProcessHarness, host: Int, named name: String,
                                  forced: [String], environment: [String: String] = [:]) throws -> ChildProcess {
        try harness.start("worker-\(name)", LANHosts.ip, PlacementLANTests.onHost(lan, host, named: name, [
            CLI.path, "worker", "--discover", "--insecure"] + forced), environment: environment)
    }

    private func formCluster(avahi: Bool) throws {
        let lan = try LANHosts(count: 3)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        if avahi {
            for host in 1...3 { try lan.startAvahi(on: host, harness: harness) }
        }
        let forced = avahi ? ["--discovery", "dnssd"] : ["--discovery", "beacon"]
        let mechanism = avahi ? "dnssd" : "beacon"
        let names = Names(lan)
        let count = 120
        let topology = try Self.writeClusterPipeline(harness, count: count)
        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", topology, "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "tcp://0.0.0.0:5556", "--insecure", "--json",
        ] + forced))
        #expect(broker.waitForErrorContaining("broker announced", timeout: .seconds(20)), "\(harness.transcripts)")
        #expect(broker.standardError.contains("via \(mechanism)"), "\(harness.transcripts)")

        let gpuBin = try NodesCommandTests.fakeNvidiaSMI(in: harness, name: "gpu-bin", script: "echo '0, NVIDIA Fake T4, 15360, 256, 7'")
        let gpuWorker = try Self.discoveringWorker(lan, harness, host: 2, named: names.gpu, forced: forced,
                                                   environment: ["PATH": NodesCommandTests.path(with: gpuBin)])
        let plainWorker = try Self.discoveringWorker(lan, harness, host: 3, named: names.plain, forced: forced)
        #expect(plainWorker.waitForErrorContaining("not serving stage infer", timeout: .seconds(30)), "\(harness.transcripts)")
        #expect(plainWorker.standardError.contains("needs a GPU"), "\(harness.transcripts)")

        // While the run goes on: `nodes --discover` from the third host shows both machines as they are.
        let nodes = try harness.start("nodes", LANHosts.ip, lan.command(on: 3, [
            CLI.path, "nodes", "--discover", "--json"] + forced))
        #expect(nodes.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        let report = try JSONSerialization.jsonObject(with: Data(nodes.standardOutput.utf8)) as? [String: Any]
        let listed = (report?["nodes"] as? [[String: Any]]) ?? []
        let byHost = Dictionary(listed.compactMap { node in (node["host"] as? String).map { ($0, node) } }, uniquingKeysWith: { first, _ in first })
        #expect(Set(byHost.keys) == [names.gpu, names.plain], "\(nodes.standardOutput)")
        #expect(byHost[names.gpu]?["gpus"] as? Int == 1, "\(nodes.standardOutput)")
        #expect((byHost[names.gpu]?["capabilities"] as? [String: String])?["gpu.model"] == "NVIDIA Fake T4", "\(nodes.standardOutput)")
        #expect(byHost[names.plain]?["gpus"] as? Int == 0, "\(nodes.standardOutput)")
        #expect(Set((byHost[names.gpu]?["stages"] as? [String]) ?? []) == ["prep", "infer", "post"], "\(nodes.standardOutput)")
        #expect(Set((byHost[names.plain]?["stages"] as? [String]) ?? []) == ["prep", "post"], "\(nodes.standardOutput)")

        #expect(broker.wait(timeout: .seconds(120)) == 0, "\(harness.transcripts)")
        let lines = RunCommandTests.lines(harness.path("out.txt"))
        #expect(lines.count == count, "\(harness.transcripts)")
        // `post infer prep item N`: every item's GPU stage ran on the GPU host; prep and post used both hosts.
        let tags = lines.map { $0.split(separator: " ").map(String.init) }
        #expect(tags.allSatisfy { $0.count == 5 && $0[1] == names.gpu }, "\(lines.prefix(10))")
        #expect(Set(tags.map { $0[2] }) == [names.gpu, names.plain], "prep hosts: \(Set(tags.map { $0[2] }))")
        #expect(Set(tags.map { $0[0] }) == [names.gpu, names.plain], "post hosts: \(Set(tags.map { $0[0] }))")
        #expect(Set(tags.map { $0[3] + " " + $0[4] }).count == count, "every item once")
        #expect(gpuWorker.isRunning && plainWorker.isRunning, "\(harness.transcripts)")
    }

    @Test(.enabled(if: PlacementLANTests.unshareAvailable, "needs Linux, root, iproute2 and unshare"))
    func threeHostsFormAClusterByBeaconWithGPUAffinityForEveryItem() throws {
        try formCluster(avahi: false)
    }

    @Test(.enabled(if: PlacementLANTests.unshareAvailable && LANHosts.avahiAvailable, "needs unshare, avahi-daemon, dbus-daemon and libdns_sd.so.1"))
    func threeHostsFormAClusterByDNSSDWithGPUAffinityForEveryItem() throws {
        try formCluster(avahi: true)
    }

    /// One worker on another host, one slot and credit 1: what waits in the broker's queue is in
    /// the broker's order, which the priorities and deadlines decide.
    private func runOnOneRemoteSlot(_ stages: String, input: [String], expectStatus: Int32) throws -> (sink: [String], dead: [ItemLedger.DeadLetter]) {
        let lan = try LANHosts(count: 2)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try (input.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: order
            source:
              file: input.txt
            stages:
            \(stages)
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: harness.path("order.yaml"), atomically: true, encoding: .utf8)
        // The worker first, so the whole input is queued at the broker before the slot frees.
        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", harness.path("order.yaml"), "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "none", "--insecure", "--no-announce", "--dead-letter", harness.path("dead.jsonl"), "--state", "none",
        ]))
        #expect(broker.waitForErrorContaining("listening on", timeout: .seconds(20)), "\(harness.transcripts)")
        _ = try harness.start("worker", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "worker", "--broker", "\(lan.address(1))", "--insecure"]))
        #expect(broker.wait(timeout: .seconds(120)) == expectStatus, "\(harness.transcripts)")
        let ledger = try ItemLedger(sinkPath: harness.path("out.txt"), deadLetterPath: harness.path("dead.jsonl"))
        return (ledger.sink, ledger.deadLetters)
    }

    @Test(.enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
    func itemsThatPassedAnUrgentStageAreServedFirstOnAnotherHost() throws {
        let input = (1...60).flatMap { ["normal \($0)", "urgent \($0)"] }
        let (sink, dead) = try runOnOneRemoteSlot("""
              - name: normal
                builtin: grep
                options: {pattern: '^normal'}
              - name: urgent
                from: source
                builtin: grep
                options: {pattern: '^urgent'}
                priority: 10
              - name: work
                from: [normal, urgent]
                builtin: sleep
                options: {duration: 20ms}
                replicas: 1
                credit: 1
            """, input: input, expectStatus: 0)
        #expect(dead.isEmpty)
        #expect(Set(sink) == Set(input), "every item once: \(sink.count) of \(input.count)")
        #expect(sink.count == input.count)
        // Both kinds reach work's queue within milliseconds, the normal ones first (their stage is
        // dispatched first); without the priority they would be served first. The urgent ones run
        // first (a few normal ones may have gone to the slot before the urgent ones were queued).
        let firstHalf = sink.prefix(input.count / 2)
        let urgentFirst = firstHalf.filter { $0.hasPrefix("urgent") }.count
        #expect(urgentFirst >= 54, "urgent items among the first 60 served: \(urgentFirst)\n\(sink.prefix(20))")
    }

    @Test(.enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
    func itemsPastTheirStagesDeadlineAreDeadLetteredWithTheReasonAndTheRestReachTheSink() throws {
        let input = (1...40).map { "item \($0)" }
        let (sink, dead) = try runOnOneRemoteSlot("""
              - name: slow
                builtin: sleep
                options: {duration: 100ms}
                replicas: 1
                credit: 1
                deadline: 1s
            """, input: input, expectStatus: 1)
        // One slot of 100 ms an item: about 10 start within the second; the others wait past it.
        #expect(sink.count + dead.count == input.count, "sink \(sink.count), dead \(dead.count)")
        #expect(Set(sink + dead.map(\.item)) == Set(input))
        #expect((3...20).contains(sink.count), "sink: \(sink.count)")
        #expect(dead.allSatisfy { $0.reason == "deadline of 1s passed before the item could be processed" }, "\(dead.map(\.reason))")
    }
}
