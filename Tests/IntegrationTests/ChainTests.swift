// Chained stages with the built binary: a worker SIGKILLed mid-chain again and again loses and duplicates nothing; chain: false keeps stages apart.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(5))) struct ChainTests {
    /// exec > sleep > exec: three stages a worker runs in one slot per item.
    static func writeChain(in directory: URL, count: Int, chainMiddle: Bool = true) throws -> [String] {
        let input = (1...count).map { String(format: "item-%05d", $0) }
        try (input.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("input.txt"), atomically: true, encoding: .utf8)
        try """
            import sys
            tag = sys.argv[1]
            for line in sys.stdin:
                sys.stdout.write(tag + ":" + line.rstrip("\\n") + "\\n")
                sys.stdout.flush()
            """.write(to: directory.appendingPathComponent("tag.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: chain-test
            source:
              file: input.txt
            stages:
              - name: tag-a
                exec: {command: [python3, tag.py, a], mode: stream}
                replicas: 2
                max-attempts: 20
              - name: pause
                builtin: sleep
                options: {duration: 3ms}
                replicas: 2
                max-attempts: 20
                chain: \(chainMiddle)
              - name: tag-c
                from: pause
                exec: {command: [python3, tag.py, c], mode: stream}
                replicas: 2
                max-attempts: 20
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(to: directory.appendingPathComponent("topology.yaml"), atomically: true, encoding: .utf8)
        return input
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func aWorkerKilledMidChainAgainAndAgainLeavesEveryItemInTheSinkOnce() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))
        let count = 4000
        let input = try Self.writeChain(in: directory, count: count)

        let dispatch = harness.ipc("dispatch")
        let events = try harness.watchEvents(harness.ipc("events"))
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("topology.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", harness.ipc("events"), "--json",
        ])
        let steady = try harness.lancompute("worker-steady", ["worker", "--broker", dispatch, "--workdir", harness.path("")])

        // Kill a worker four times while it holds items, each time once the sink has grown since the last kill.
        let sink = directory.appendingPathComponent("out.txt").path
        let start = ContinuousClock.now
        var kills = 0
        for round in 1...4 {
            let victim = try harness.lancompute("worker-victim-\(round)", ["worker", "--broker", dispatch, "--workdir", harness.path("")])
            let seen = Self.lines(sink).count
            let roundStart = ContinuousClock.now
            while (Self.lines(sink).count < seen + count / 12 || ContinuousClock.now - roundStart < .milliseconds(700))
                    && ContinuousClock.now - start < .seconds(120) && broker.isRunning {
                Thread.sleep(forTimeInterval: 0.02)
            }
            guard broker.isRunning, Self.lines(sink).count < count else { break }
            victim.signal(SIGKILL)
            _ = victim.wait(timeout: .seconds(5))
            kills += 1
        }
        #expect(kills == 4, "the run finished after \(kills) kill(s); make it longer")

        let status = broker.wait(timeout: .seconds(180))
        #expect(status == 0, "broker exit status \(String(describing: status)); log:\n\(harness.transcripts)")
        let lines = Self.lines(sink)
        #expect(lines.count == count, "sink has \(lines.count) lines, expected \(count)")
        #expect(Set(lines).count == lines.count, "duplicates in the sink")
        #expect(Set(lines) == Set(input.map { "c:a:" + $0 }), "every item went through all three stages")
        #expect(steady.standardError.contains("serving stage tag-a (chain tag-a > pause > tag-c)"), "\(steady.transcript)")
        #expect(!steady.standardError.contains("serving stage pause "), "a chained member is not registered on its own")
        let summary = broker.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
        let json = try #require(summary.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(json["itemsOut"] as? Int == count)
        #expect(json["deadLettered"] as? Int == 0)
        #expect(events.wait(until: { events.events("event.worker.expired").count >= kills }, timeout: .seconds(5)),
                "the broker noticed \(events.events("event.worker.expired").count) of \(kills) dead workers:\n\(harness.transcripts)")
        let retried = events.events("event.item.retried").filter { $0["reason"] as? String == "worker-lost" }
        #expect(!retried.isEmpty, "no item was taken back from a killed worker: none was killed mid-chain")
        #expect(retried.allSatisfy { $0["stage"] as? String == "tag-a" }, "a chain is retried from its head")
    }

    @Test func chainFalseKeepsTheStagesApart() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))
        let input = try Self.writeChain(in: directory, count: 200, chainMiddle: false)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("topology.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", "none",
        ])
        let worker = try harness.lancompute("worker", ["worker", "--broker", dispatch, "--workdir", harness.path("")])
        let status = broker.wait(timeout: .seconds(120))
        #expect(status == 0, "\(harness.transcripts)")
        #expect(Set(Self.lines(harness.path("out.txt"))) == Set(input.map { "c:a:" + $0 }))
        for stage in ["tag-a", "pause", "tag-c"] {
            #expect(worker.standardError.contains("serving stage \(stage) with"), "\(stage) is served on its own:\n\(worker.transcript)")
        }
        #expect(!worker.standardError.contains("(chain "))
    }
}
