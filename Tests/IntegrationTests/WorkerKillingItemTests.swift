// An item whose exec stage SIGKILLs its own worker, with workers restarted as they die: it is dead-lettered, every other item reaches the sink once.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct WorkerKillingItemTests {
    @Test func anItemThatKillsEveryWorkerItMeetsIsDeadLetteredAfterMaxAttempts() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let items = (0..<30).map { $0 == 12 ? "poison" : String(format: "item-%02d", $0) }
        try (items.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        // A per-item exec child is started by the worker itself (Foundation Process, no shell in
        // between), so the script's parent is the worker process.
        try """
            line=$(cat)
            if [ "$line" = poison ]; then kill -9 $PPID; sleep 5; fi
            printf 'ok:%s\\n' "$line"
            """.write(toFile: harness.path("check.sh"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: poison
            source:
              file: input.txt
            stages:
              - name: check
                exec:
                  command: [sh, check.sh]
                  mode: per-item
                credit: 1
                max-attempts: 3
            sink:
              file: out.txt
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: harness.path("pipeline.yaml"), atomically: true, encoding: .utf8)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("pipeline.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", "none", "--json", "--dead-letter", harness.path("dead.jsonl"),
        ])
        #expect(broker.wait(until: { broker.standardError.contains("broker ready") }, timeout: .seconds(20)), "\(harness.transcripts)")

        // The supervisor: two workers at all times, each one that dies replaced, within bounds.
        var started = 0
        func startWorker() throws -> ChildProcess {
            started += 1
            return try harness.lancompute("worker-\(started)", ["worker", "--broker", dispatch, "--workdir", harness.path("")])
        }
        var workers = [try startWorker(), try startWorker()]
        var deaths = 0
        func countIfKilled(_ worker: ChildProcess) {
            let status = worker.wait(timeout: .seconds(1))
            if worker.process.terminationReason == .uncaughtSignal && status == SIGKILL { deaths += 1 }
        }
        let deadline = ContinuousClock.now + .seconds(90)
        while broker.isRunning && ContinuousClock.now < deadline && started < 20 {
            for index in workers.indices where !workers[index].isRunning {
                countIfKilled(workers[index])
                workers[index] = try startWorker()
            }
            Thread.sleep(forTimeInterval: 0.05)
        }

        let status = broker.wait(timeout: .seconds(10))
        // The last victims may die as the run ends, before the loop above saw them.
        Thread.sleep(forTimeInterval: 0.2)
        for worker in workers where !worker.isRunning { countIfKilled(worker) }
        #expect(status == 1, "exit status \(String(describing: status)) after \(started) workers\n\(harness.transcripts)")
        #expect(deaths >= 3, "the poison item killed \(deaths) workers, expected one per attempt")
        let ledger = try ItemLedger(sinkPath: harness.path("out.txt"), deadLetterPath: harness.path("dead.jsonl"))
        #expect(ledger.deadLetters.map(\.item) == ["poison"], "\(harness.transcripts)")
        if let letter = ledger.deadLetters.first {
            #expect(letter.attempts == 3)
            #expect(letter.reason.contains("3 of 3 attempts"), "\(letter.reason)")
        }
        #expect(ledger.sink.sorted() == items.filter { $0 != "poison" }.map { "ok:" + $0 }.sorted(), "\(harness.transcripts)")
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsIn == items.count && summary.itemsOut == items.count - 1 && summary.deadLettered == 1, "\(summary)")
    }
}
