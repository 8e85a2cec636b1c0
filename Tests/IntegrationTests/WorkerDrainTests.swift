// A worker stopped with SIGTERM mid-run finishes the items it holds, answers them, and exits 0.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct WorkerDrainTests {
    @Test func aSigtermedWorkerFinishesItsItemsSoNoneIsRunTwice() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let count = 40
        let lines = (0..<count).map { "item \($0)" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        let log = harness.path("processed.log")
        // Logs every item it runs (with its worker's pid: the slots are children of the worker).
        try """
            import os, sys, time
            for line in sys.stdin:
                time.sleep(0.3)
                with open(\(String(reflecting: log)), "a") as log:
                    log.write("%d %s\\n" % (os.getppid(), line.rstrip("\\n")))
                sys.stdout.write("slow:" + line)
                sys.stdout.flush()
            """.write(toFile: harness.path("slow.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: drain
            source:
              file: input.txt
            stages:
              - name: slow
                exec:
                  command: [python3, slow.py]
                  mode: stream
                replicas: 2
                max-attempts: 1
              - name: upper
                builtin: upper
                from: slow
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
        try harness.lancompute("upper", ["worker", "--broker", dispatch, "--stages", "upper"])
        let victim = try harness.lancompute("victim", [
            "worker", "--broker", dispatch, "--stages", "slow", "--workdir", harness.path(""), "--grace", "20",
        ])

        // Stop the victim once it has run a few items: it holds more, two of them running.
        let start = ContinuousClock.now
        while ProcessedLog.read(log).count < 4 && ContinuousClock.now - start < .seconds(60) && victim.isRunning {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let victimPID = String(victim.process.processIdentifier)
        let before = ProcessedLog.read(log).filter { $0.pid == victimPID }.count
        #expect(before >= 4, "the victim never ran items: \(harness.transcripts)")
        victim.signal(SIGTERM)
        let status = victim.wait(timeout: .seconds(30))
        #expect(status == 0, "victim exit status \(String(describing: status)): \(harness.transcripts)")
        let after = ProcessedLog.read(log).filter { $0.pid == victimPID }.count
        #expect(after > before, "the victim finished nothing it held after SIGTERM: \(victim.transcript)")

        try harness.lancompute("rest", ["worker", "--broker", dispatch, "--stages", "slow", "--workdir", harness.path("")])
        #expect(broker.wait(timeout: .seconds(90)) == 0, "\(harness.transcripts)")

        let runs = ProcessedLog.read(log).map(\.item)
        #expect(runs.count == count, "items were run \(runs.count) times for \(count) items: the drain redelivered some")
        #expect(Set(runs) == Set(lines))
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(sink.split(separator: "\n").map(String.init).sorted() == lines.map { "SLOW:" + $0.uppercased() }.sorted())
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.deadLettered == 0)
        // The victim said goodbye: the broker never had to notice its silence, nor retry its items.
        // (On a loaded machine a stage's DEALER that owed nothing may still be expired after its goodbye:
        // harmless, it held no items.)
        #expect(events.events("event.worker.expired").allSatisfy { $0["in_flight"] as? Int == 0 }, "\(events.standardOutput)")
        // (Items that reached it after the signal go back unstarted, without costing an attempt.)
        #expect(events.events("event.item.retried").allSatisfy { $0["reason"] as? String == "worker-left" }, "\(events.standardOutput)")
    }
}
