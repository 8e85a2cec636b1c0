// A worker that fails every item of a stage is quarantined by its circuit breaker while another finishes the stage: three hosts, the built binary.

import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(4)))
struct BreakerLANTests {
    /// Uppercases its item, unless the worker that runs it was started with BREAKER_TEST_FAULTY set
    /// (exec children inherit the worker's environment): then it fails, as a machine missing a library would.
    static let script = """
        import os, sys
        data = sys.stdin.read()
        if os.environ.get("BREAKER_TEST_FAULTY"):
            sys.stderr.write("this machine cannot do it\\n")
            sys.exit(3)
        sys.stdout.write(data.upper())
        """

    @Test(.enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
    func aWorkerThatFailsEveryItemIsQuarantinedWhileTheOtherFinishesTheStage() throws {
        let lan = try LANHosts(count: 3)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = harness.path("pipeline")
        try FileManager.default.createDirectory(atPath: directory + "/scripts", withIntermediateDirectories: true)
        try Self.script.write(toFile: directory + "/scripts/upper.py", atomically: true, encoding: .utf8)
        let count = 120
        let input = (1...count).map { "item \($0)" }
        try (input.joined(separator: "\n") + "\n").write(toFile: directory + "/input.txt", atomically: true, encoding: .utf8)
        // A cool-down longer than the run: once open, the faulty worker gets no probe before the end.
        try """
            version: 1
            name: quarantine
            source:
              file: input.txt
            stages:
              - name: work
                exec:
                  command: [python3, scripts/upper.py]
                  mode: per-item
                credit: 4
                breaker: {failures: 3, window: 10, cooldown: 5m}
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: directory + "/quarantine.yaml", atomically: true, encoding: .utf8)

        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", directory + "/quarantine.yaml", "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "tcp://0.0.0.0:5556", "--insecure", "--no-announce", "--json",
        ]))
        #expect(broker.waitForErrorContaining("listening on", timeout: .seconds(20)), "\(harness.transcripts)")
        let events = try harness.start("events", LANHosts.ip, lan.command(on: 1, [CLI.path, "events", "tcp://127.0.0.1:5556"]))
        let dispatch = "tcp://\(lan.address(1)):5555"
        // The healthy worker first, so the stage is seen to work before the faulty one takes items.
        for (host, name) in [(2, "good"), (3, "faulty")] {
            var argv = [CLI.path, "worker", "--broker", dispatch, "--insecure", "--cache", harness.path("cache-\(name)"), "--label", "role=\(name)"]
            if name == "faulty" { argv = ["/usr/bin/env", "BREAKER_TEST_FAULTY=1"] + argv }
            try harness.start(name, LANHosts.ip, lan.command(on: host, argv), directory: harness.path("."))
            #expect(broker.wait(until: { broker.standardError.components(separatedBy: "serves stage work").count - 1 == (name == "good" ? 1 : 2) },
                                timeout: .seconds(30)), "\(harness.transcripts)")
        }

        #expect(events.wait(until: { !events.events("event.breaker.opened").isEmpty }, timeout: .seconds(60)), "\(harness.transcripts)")
        let faultyNode = events.events("event.node.joined").first { ($0["capabilities"] as? [String: String])?["label.role"] == "faulty" }?["id"] as? String
        let opened = try #require(events.events("event.breaker.opened").first)
        #expect(faultyNode != nil && opened["node"] as? String == faultyNode, "the faulty worker's breaker opened: \(opened)")
        #expect(opened["stage"] as? String == "work")
        #expect(opened["cooldown_ms"] as? Int == 300_000)

        // While the healthy worker finishes the stage, `lancompute nodes --json` shows the quarantine.
        let nodes = try harness.start("nodes", LANHosts.ip, lan.command(on: 1, [CLI.path, "nodes", "tcp://127.0.0.1:5555", "--json"]))
        if nodes.wait(timeout: .seconds(20)) == 0 {
            let report = try JSONSerialization.jsonObject(with: Data(nodes.standardOutput.utf8)) as? [String: Any]
            let faulty = (report?["nodes"] as? [[String: Any]])?.first { $0["node"] as? String == faultyNode }
            let breaker = (faulty?["breakers"] as? [[String: Any]])?.first
            #expect(breaker?["stage"] as? String == "work" && breaker?["state"] as? String == "open", "\(nodes.transcript)")
            #expect((breaker?["probe_in_ms"] as? Int ?? 0) > 200_000, "\(nodes.transcript)")
        } else {
            // The run may already be over on a fast machine; the report is then LC2040 and proves nothing either way.
            #expect(broker.exitStatus != nil, "nodes did not answer while the broker runs: \(harness.transcripts)")
        }

        #expect(broker.wait(timeout: .seconds(120)) == 0, "\(harness.transcripts)")
        let output = RunCommandTests.lines(directory + "/out.txt")
        #expect(output.count == count, "every item once: \(output.count) lines")
        #expect(output.sorted() == input.map { $0.uppercased() }.sorted(), "\(harness.transcripts)")
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsOut == count)
        #expect(summary.deadLettered == 0, "no item was given up on")

        // It opened at its third failure; only the items it already held (credit 4, so 3 more) failed after that.
        #expect(events.wait(until: { events.events("event.pipeline.finished").count == 1 }, timeout: .seconds(10)), "\(events.transcript)")
        let last = try #require(events.jsonLines.last { $0["type"] as? String == "metrics" })
        let stage = try #require((last["stages"] as? [[String: Any]])?.first)
        let failed = stage["failed"] as? Int ?? -1
        #expect((3...6).contains(failed), "failed attempts: \(failed)")
        #expect(stage["breakers_opened"] as? Int == 1)
        #expect(events.events("event.breaker.opened").count == 1)
        #expect(events.events("event.breaker.probing").isEmpty)
        let logged = broker.standardError.components(separatedBy: "at stage work opened").count - 1
        #expect(logged == 1, "one log line for the transition, not \(logged)")
    }
}
