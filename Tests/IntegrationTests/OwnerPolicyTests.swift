// A worker started with --yield-to-owner stops taking items while other processes keep the machine busy, and resumes.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(5))) struct OwnerPolicyTests {
    /// Polls `condition` every 100 ms for at most `timeout`.
    static func wait(_ timeout: Duration, until condition: () -> Bool) -> Bool {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition()
    }

    /// `lancompute nodes --json`: each node's `state`, by node id.
    static func states(_ harness: ProcessHarness, _ dispatch: String, attempt: Int) throws -> [String: String] {
        let query = try harness.lancompute("nodes-\(attempt)", ["nodes", dispatch, "--json"])
        guard query.wait(timeout: .seconds(20)) == 0,
              let json = try? JSONSerialization.jsonObject(with: Data(query.standardOutput.utf8)) as? [String: Any],
              let nodes = json["nodes"] as? [[String: Any]] else { return [:] }
        var states: [String: String] = [:]
        for node in nodes { if let id = node["node"] as? String { states[id] = node["state"] as? String } }
        return states
    }

    @Test func aThresholdWithoutTheFlagOrOutOfRangeIsRefusedWithOneLine() throws {
        let alone = try ProcessHarness.run(["worker", "--owner-threshold", "0.3"], timeout: .seconds(30))
        #expect(alone.status == 64 && alone.standardError.contains("--owner-threshold needs --yield-to-owner"), "\(alone.standardError)")
        let tooHigh = try ProcessHarness.run(["worker", "--yield-to-owner", "--owner-threshold", "1.5"], timeout: .seconds(30))
        #expect(tooHigh.status == 64 && tooHigh.standardError.contains("at most 1"), "\(tooHigh.standardError)")
    }

    @Test func aWorkerYieldsWhileTheMachineIsBusyAndAnotherFinishesTheItems() throws {
        let harness = try ProcessHarness()
        var burners: [ChildProcess] = []
        defer {
            for burner in burners { burner.signal(SIGKILL) }
            harness.shutDown()
        }
        let count = 3000
        let lines = (0..<count).map { "item \($0)" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        let log = harness.path("processed.log")
        try """
            import os, sys, time
            for line in sys.stdin:
                time.sleep(0.05)
                with open(\(String(reflecting: log)), "a") as log:
                    log.write("%d %s\\n" % (os.getppid(), line.rstrip("\\n")))
                sys.stdout.write(line)
                sys.stdout.flush()
            """.write(toFile: harness.path("nap.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: owner
            source:
              file: input.txt
            stages:
              - name: nap
                exec:
                  command: [python3, nap.py]
                replicas: 1
                max-attempts: 1
            sink:
              file: out.txt
            """.write(toFile: harness.path("pipeline.yaml"), atomically: true, encoding: .utf8)

        let dispatch = harness.ipc("dispatch")
        let events = try harness.watchEvents(harness.ipc("events"))
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("pipeline.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", harness.ipc("events"), "--json",
        ])
        #expect(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")
        // Others may load this machine too: the threshold sits high, so only the burners below reach it.
        let owned = try harness.lancompute("owned", [
            "worker", "--broker", dispatch, "--workdir", harness.path(""), "--yield-to-owner", "--owner-threshold", "0.75",
        ])
        let spare = try harness.lancompute("spare", ["worker", "--broker", dispatch, "--workdir", harness.path("")])
        let ownedPID = String(owned.process.processIdentifier)
        let sparePID = String(spare.process.processIdentifier)
        func ran(_ pid: String) -> Int { ProcessedLog.read(log).filter { $0.pid == pid }.count }
        #expect(Self.wait(.seconds(60)) { ran(ownedPID) >= 3 }, "the owned worker never ran items: \(harness.transcripts)")

        // The owner comes back: one busy loop per core, each ending by itself after two minutes at most.
        for index in 0..<ProcessInfo.processInfo.activeProcessorCount {
            burners.append(try harness.python("burner-\(index)", ["-c", "import time\nend = time.time() + 120\nwhile time.time() < end: pass"]))
        }
        // Judged by the worker's own report, not by timing: the broker publishes what the worker said.
        #expect(Self.wait(.seconds(60)) { !events.events("event.worker.yielding").isEmpty }, "no worker.yielding: \(harness.transcripts)")
        let yielding = try #require(events.events("event.worker.yielding").first)
        #expect((yielding["node"] as? String)?.contains("-\(ownedPID)-") == true, "\(yielding)")
        #expect((yielding["other_load"] as? Double ?? 0) > 1.0, "\(yielding)")
        var shown: [String: String] = [:]
        for attempt in 0..<5 where !shown.values.contains("yielding to owner") {
            shown = try Self.states(harness, dispatch, attempt: attempt)
        }
        #expect(shown.filter { $0.key.contains("-\(ownedPID)-") }.values.first == "yielding to owner", "\(shown)")
        #expect(shown.filter { $0.key.contains("-\(sparePID)-") }.values.first == "serving", "\(shown)")

        // Whatever was running when it yielded finishes; after that, nothing new while the other worker goes on.
        Thread.sleep(forTimeInterval: 1.5)
        let ownedBefore = ran(ownedPID)
        let spareBefore = ran(sparePID)
        Thread.sleep(forTimeInterval: 4)
        #expect(events.events("event.worker.resumed").isEmpty, "it resumed while the burners ran: \(events.standardOutput)")
        #expect(ran(ownedPID) == ownedBefore, "the yielding worker took new items")
        #expect(ran(sparePID) > spareBefore, "the other worker stopped too: \(harness.transcripts)")

        // The owner leaves: after the calm period the worker says so and takes items again.
        for burner in burners { burner.signal(SIGKILL) }
        for burner in burners { _ = burner.wait(timeout: .seconds(5)) }
        #expect(Self.wait(.seconds(120)) { !events.events("event.worker.resumed").isEmpty }, "no worker.resumed: \(harness.transcripts)")
        let ownedResumed = ran(ownedPID)
        #expect(Self.wait(.seconds(60)) { ran(ownedPID) > ownedResumed }, "the worker resumed but took nothing")

        #expect(broker.wait(timeout: .seconds(180)) == 0, "\(harness.transcripts)")
        let runs = ProcessedLog.read(log).map(\.item)
        #expect(runs.count == count, "items were run \(runs.count) times for \(count) items")
        #expect(Set(runs) == Set(lines))
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(sink.split(separator: "\n").map(String.init).sorted() == lines.sorted())
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.deadLettered == 0)
        // The yielding worker was never taken for dead.
        #expect(events.events("event.worker.expired").isEmpty, "\(events.standardOutput)")
        #expect(events.events("event.item.retried").allSatisfy { $0["reason"] as? String == "handed-back" }, "\(events.standardOutput)")
    }
}
