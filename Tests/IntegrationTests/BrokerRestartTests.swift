// A broker SIGKILLed while workers hold items, and restarted at once on the same endpoints: the new run's sink holds exactly its own outputs.

import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two runs read different lines ("old-…", "new-…") under the same item ids, so an output a
/// worker carries over from the killed run shows up as a stray line, and a genuine output refused
/// in its place (taken for a duplicate of the stale one) as a missing one.
@Suite(.serialized, .timeLimit(.minutes(4))) struct BrokerRestartTests {
    let count = 300

    func lines(_ run: String) -> [String] { (0..<count).map { String(format: "\(run)-%04d", $0) } }
    /// The pipeline's output for a line: `mark` upper-cases it, `hold` passes it through.
    func outputs(_ run: String) -> [String] { lines(run).map { $0.uppercased() } }

    /// Two stages: a fast one, whose replies go to the broker, then a slow final one, so that each
    /// worker holds several items at the kill whose outputs go straight to the aggregator. An item
    /// of `hold` lasts about as long as a broker takes to start, so many finish in the gap and reach
    /// the new aggregator; a 1 s heartbeat leaves the workers' old sessions up through the restart.
    /// (Tuned so that, before items carried their run's epoch, every trial let stale lines in.)
    private func writeTopology(_ harness: ProcessHarness, source: String) throws -> String {
        let path = harness.path("pipeline.yaml")
        try """
            version: 1
            name: restart
            source:
              \(source)
            stages:
              - name: mark
                builtin: upper
              - name: hold
                builtin: sleep
                options: {duration: 300ms}
                replicas: 8
                from: mark
            sink:
              file: out-old.txt
            broker:
              heartbeat-interval: 1s
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func startBroker(_ harness: ProcessHarness, name: String, topology: String, extra: [String]) throws -> ChildProcess {
        let broker = try harness.lancompute(name, [
            "broker", topology, "--bind", harness.ipc("dispatch"), "--aggregator", harness.ipc("aggregator"),
            "--events", "none", "--json", "--dead-letter", harness.path("\(name).dead.jsonl"),
        ] + extra)
        #expect(broker.wait(until: { broker.standardError.contains("broker ready") }, timeout: .seconds(20)), "\(harness.transcripts)")
        return broker
    }

    private func startWorkers(_ harness: ProcessHarness) throws {
        for index in 1...2 {
            try harness.lancompute("worker-\(index)", ["worker", "--broker", harness.ipc("dispatch")])
        }
    }

    /// Waits (bounded) until `path` has at least `lines` lines or `process` exits.
    private func waitForLines(_ path: String, _ lines: Int, while process: ChildProcess, timeout: Duration) {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline && KillRecoveryTests.lineCount(path) < lines {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// SIGKILLs the first broker once some outputs are in its sink and the workers are busy, so
    /// they hold items of the old run through the restart.
    private func killMidRun(_ harness: ProcessHarness, _ broker: ChildProcess) {
        waitForLines(harness.path("out-old.txt"), 8, while: broker, timeout: .seconds(60))
        let before = KillRecoveryTests.lineCount(harness.path("out-old.txt"))
        #expect(broker.isRunning && before < count, "the first run ended before the kill (\(before) lines): \(harness.transcripts)")
        broker.signal(SIGKILL)
        #expect(broker.wait(timeout: .seconds(5)) != nil)
    }

    private func expectOnlyTheNewRun(_ harness: ProcessHarness, broker: ChildProcess) throws {
        let ledger = try ItemLedger(sinkPath: harness.path("out-new.txt"), deadLetterPath: harness.path("broker-2.dead.jsonl"))
        #expect(ledger.deadLetters.isEmpty, "\(ledger.deadLetters.map(\.reason))")
        ledger.expectEachExactlyOnce(outputs("new"), context: harness.transcripts)
        // Byte for byte: the sink's bytes are the expected lines, in some order, each ended by a newline.
        let bytes = FileManager.default.contents(atPath: harness.path("out-new.txt")) ?? Data()
        let sorted = bytes.split(separator: 0x0A).map { Data($0) }.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(sorted == outputs("new").sorted().map { Data($0.utf8) })
        #expect(bytes.count == outputs("new").reduce(0) { $0 + $1.utf8.count + 1 })
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsIn == count && summary.itemsOut == count && summary.deadLettered == 0, "\(summary)")
    }

    @Test func fileSourceBrokerKilledAndRestartedAtOnce() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try (lines("old").joined(separator: "\n") + "\n").write(toFile: harness.path("old.txt"), atomically: true, encoding: .utf8)
        try (lines("new").joined(separator: "\n") + "\n").write(toFile: harness.path("new.txt"), atomically: true, encoding: .utf8)
        let topology = try writeTopology(harness, source: "file: old.txt")
        let first = try startBroker(harness, name: "broker-1", topology: topology, extra: [])
        try startWorkers(harness)
        killMidRun(harness, first)

        let second = try startBroker(harness, name: "broker-2", topology: topology, extra: [
            "--input", harness.path("new.txt"), "--output", harness.path("out-new.txt"),
        ])
        let status = second.wait(timeout: .seconds(90))
        #expect(status == 0, "exit status \(String(describing: status))\n\(harness.transcripts)")
        try expectOnlyTheNewRun(harness, broker: second)
    }

    enum Producer: String, CaseIterable { case feedCommand, plainPush }

    @Test(arguments: Producer.allCases)
    func pullSourceBrokerKilledAndRestartedAtOnce(producer: Producer) throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let source = harness.ipc("source")
        let topology = try writeTopology(harness, source: "pull: \(source)")
        let context = try Context()
        defer { context.shutdown() }
        // A plain PUSH socket stays open until its lines are in the sink: LINGER is no proof of delivery.
        var pushSockets: [Socket] = []
        defer { for socket in pushSockets { socket.close() } }
        func feed(_ run: String) throws {
            try (lines(run).joined(separator: "\n") + "\n").write(toFile: harness.path("\(run).txt"), atomically: true, encoding: .utf8)
            switch producer {
            case .feedCommand:
                let feed = try harness.lancompute("feed-\(run)", ["feed", harness.ipc("dispatch"), harness.path("\(run).txt")])
                #expect(feed.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
            case .plainPush:
                let push = try Socket(.push, context: context)
                pushSockets.append(push)
                try push.set(.linger, .zero)
                try push.connect(source)
                for line in lines(run) { try push.send(Array(line.utf8)) }
            }
        }

        let first = try startBroker(harness, name: "broker-1", topology: topology, extra: [])
        try startWorkers(harness)
        try feed("old")
        killMidRun(harness, first)
        for socket in pushSockets { socket.close() }
        pushSockets.removeAll()

        let second = try startBroker(harness, name: "broker-2", topology: topology, extra: ["--output", harness.path("out-new.txt")])
        try feed("new")
        // A pull source runs until stopped: stop it once the sink has all it should (or the wait runs out).
        waitForLines(harness.path("out-new.txt"), count, while: second, timeout: .seconds(90))
        // Stale outputs still in flight would land now: give them the time to.
        Thread.sleep(forTimeInterval: 1.0)
        second.signal(SIGTERM)
        let status = second.wait(timeout: .seconds(30))
        #expect(status == 0, "exit status \(String(describing: status))\n\(harness.transcripts)")
        try expectOnlyTheNewRun(harness, broker: second)
    }
}
