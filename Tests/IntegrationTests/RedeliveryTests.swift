// Items held by a worker that dies, or answered for the wrong attempt, are still finished exactly once.

import Foundation
import LANCompute
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct RedeliveryTests {
    /// Writes `lines` as the source and a topology whose stages are `stages` (YAML), into the harness directory.
    private func pipeline(_ harness: ProcessHarness, lines: [String], stages: String) throws -> String {
        try (lines.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        let path = harness.path("pipeline.yaml")
        try """
            version: 1
            name: redelivery
            source:
              file: input.txt
            stages:
            \(stages)
            sink:
              file: out.txt
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func workersKilledMidRunLoseNothingAndDuplicateNothing() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let lines = (0..<400).map { "line \($0)" }
        let topology = try pipeline(harness, lines: lines, stages: """
              - name: reverse
                max-attempts: 5
              - name: upper
                builtin: upper
                from: reverse
                max-attempts: 5
            """)
        let dispatch = harness.ipc("dispatch")
        let events = try harness.watchEvents(harness.ipc("events"))
        let broker = try harness.lancompute("broker", [
            "broker", topology, "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", harness.ipc("events"), "--json",
        ])
        try #require(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")
        // The plain MDP worker is the slow stage (credit 1, a few ms an item), so the run lasts a few seconds.
        let reverseArguments = ["Topologies/workers/mdp_worker.py", "--broker", dispatch, "--service", "reverse", "--delay", "5"]
        let firstReverse = try harness.python("reverse-1", reverseArguments)
        let firstUpper = try harness.lancompute("upper-1", ["worker", "--broker", dispatch])
        Thread.sleep(forTimeInterval: 1.0)
        #expect(broker.isRunning, "the run ended before the workers could be killed: \(harness.transcripts)")

        // SIGKILL: no DISCONNECT, so the broker finds out only when heartbeats stop.
        firstUpper.signal(SIGKILL)
        firstReverse.signal(SIGKILL)
        #expect(firstUpper.wait(timeout: .seconds(5)) != nil)
        #expect(firstReverse.wait(timeout: .seconds(5)) != nil)
        try harness.python("reverse-2", reverseArguments)
        try harness.lancompute("upper-2", ["worker", "--broker", dispatch])

        let status = broker.wait(timeout: .seconds(120))
        #expect(status == 0, "\(harness.transcripts)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        let expected = lines.map { String($0.reversed()).uppercased() }
        #expect(sink.split(separator: "\n").map(String.init).sorted() == expected.sorted())
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsOut == lines.count)
        #expect(summary.deadLettered == 0)
        #expect(events.wait(until: { !events.events("event.worker.expired").isEmpty }, timeout: .seconds(5)),
                "the feed shows no expired worker: \(events.standardOutput)")
    }

    @Test func anUnansweredItemTimesOutIsSentAgainAndIsDeadLetteredAfterMaxAttempts() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let topology = try pipeline(harness, lines: ["abc"], stages: """
              - name: reverse
                timeout: 300ms
                max-attempts: 2
            """)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", topology, "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", "none",
            "--dead-letter", harness.path("dead.jsonl"), "--json",
        ])
        try #require(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")

        // A plain MDP worker that stays alive (heartbeats) but never answers.
        let context = try Context()
        defer { context.shutdown() }
        let worker = try Socket(.dealer, context: context)
        defer { worker.close() }
        try worker.connect(dispatch)
        try worker.send(multipart: WorkerMessage.ready(service: "reverse", capabilities: nil).frames)
        var attempts: [UInt16] = []
        var status: Int32?
        for _ in 0..<100 where status == nil {
            try worker.send(multipart: WorkerMessage.heartbeat.frames)
            while try worker.poll(.in, timeout: .milliseconds(50)).contains(.in) {
                if case .request(let client, _) = try WorkerMessage(frames: try worker.receiveMultipart()) {
                    attempts.append(try ItemToken(bytes: client).attempt)
                }
            }
            status = broker.wait(timeout: .milliseconds(100))
        }
        #expect(status == 1, "\(harness.transcripts)")
        #expect(attempts == [1, 2])
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.deadLettered == 1)
        let record = try String(contentsOfFile: harness.path("dead.jsonl"), encoding: .utf8)
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any])
        #expect(fields["id"] as? String == "0")
        #expect(fields["stage"] as? String == "reverse")
        #expect(fields["attempts"] as? Int == 2)
        #expect(fields["item"] as? String == "abc")
        #expect((fields["error"] as? String)?.contains("timed out") == true)
        #expect((fields["reason"] as? String)?.hasPrefix("failed 2 of 2 attempts") == true)
        #expect(fields["stderr"] as? String == "")
    }

    @Test func aReplyForAnEarlierAttemptDoesNotStrandTheItem() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let topology = try pipeline(harness, lines: ["abc"], stages: """
              - name: reverse
            """)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", topology, "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", "none", "--json",
        ])
        try #require(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")

        let context = try Context()
        defer { context.shutdown() }
        let worker = try Socket(.dealer, context: context)
        defer { worker.close() }
        try worker.connect(dispatch)
        try worker.send(multipart: WorkerMessage.ready(service: "reverse", capabilities: nil).frames)
        var request: (client: [UInt8], body: [[UInt8]])?
        let deadline = ContinuousClock.now + .seconds(10)
        while request == nil && ContinuousClock.now < deadline {
            guard try worker.poll(.in, timeout: .milliseconds(100)).contains(.in) else { continue }
            if case .request(let client, let body) = try WorkerMessage(frames: try worker.receiveMultipart()) {
                request = (client, body)
            }
        }
        let (client, body) = try #require(request)
        #expect(body == [Array("abc".utf8)])
        let token = try ItemToken(bytes: client)
        #expect(token.attempt == 1)

        // A reply naming an attempt the broker never sent must be ignored without losing track of the item...
        let stale = ItemToken(id: token.id, attempt: token.attempt + 1).bytes
        try worker.send(multipart: WorkerMessage.reply(client: stale, body: [Array("wrong".utf8)]).frames)
        // ...so the reply for the attempt in flight still completes it.
        try worker.send(multipart: WorkerMessage.reply(client: client, body: [Array("cba".utf8)]).frames)

        var status: Int32?
        for _ in 0..<50 where status == nil {
            try worker.send(multipart: WorkerMessage.heartbeat.frames)
            status = broker.wait(timeout: .milliseconds(200))
        }
        #expect(status == 0, "\(harness.transcripts)")
        let sink = (try? String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)) ?? ""
        #expect(sink == "cba\n")
    }
}
