// `lancompute run` stopped by signals mid-run: every item read ends in the sink or the dead letters, the rest is reported unread.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct InterruptedRunTests {
    /// The fields of the `--json` summary an interrupted run is judged by.
    struct StopSummary: Decodable {
        var itemsIn: Int
        var itemsOut: Int
        var deadLettered: Int
        var interrupted: Bool
        var inputLeft: Bool

        init(json: String) throws {
            guard let line = json.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
                throw HarnessError("no JSON summary in: \(json)")
            }
            self = try JSONDecoder().decode(Self.self, from: Data(line.utf8))
        }
    }

    let count = 100_000
    var input: [String] { (1...count).map { String(format: "item-%06d", $0) } }

    /// A large file source through a slow stage: far more input than the run can finish while the test watches.
    private func startRun(_ harness: ProcessHarness, grace: String) throws -> ChildProcess {
        try (input.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: interrupted
            source:
              file: input.txt
            stages:
              - name: slow
                builtin: sleep
                options: {duration: 100ms}
                replicas: 4
            sink:
              file: out.txt
            """.write(toFile: harness.path("pipeline.yaml"), atomically: true, encoding: .utf8)
        return try harness.lancompute("run", [
            "run", harness.path("pipeline.yaml"), "--workers", "2", "--queue-limit", "400", "--grace", grace,
            "--dead-letter", harness.path("dead.jsonl"), "--json",
        ])
    }

    /// Waits (bounded) until the sink has some lines, so the signal lands mid-run with items in flight.
    private func waitForProgress(_ harness: ProcessHarness, run: ChildProcess) {
        let deadline = ContinuousClock.now + .seconds(60)
        while run.isRunning && ContinuousClock.now < deadline && KillRecoveryTests.lineCount(harness.path("out.txt")) < 40 {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    private func expectAccounted(_ harness: ProcessHarness, run: ChildProcess) throws {
        let summary = try StopSummary(json: run.standardOutput)
        #expect(summary.interrupted)
        #expect(summary.inputLeft, "the run read all its input before the signal; the test proves nothing")
        #expect(summary.itemsIn > 0 && summary.itemsIn < count)
        #expect(summary.itemsOut + summary.deadLettered == summary.itemsIn, "\(summary)")
        let ledger = try ItemLedger(sinkPath: harness.path("out.txt"), deadLetterPath: harness.path("dead.jsonl"))
        #expect(ledger.sink.count == summary.itemsOut)
        #expect(ledger.deadLetters.count == summary.deadLettered)
        // The file source is read in order, so the items read are the first `itemsIn` lines.
        ledger.expectEachExactlyOnce(Array(input.prefix(summary.itemsIn)), context: harness.transcripts)
        for letter in ledger.deadLetters {
            #expect(letter.reason.contains("stopped"), "\(letter.reason)")
        }
    }

    @Test func sigtermMidRunAccountsForEveryItemReadAndReportsTheRest() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let run = try startRun(harness, grace: "1")
        waitForProgress(harness, run: run)
        #expect(run.isRunning, "\(harness.transcripts)")
        run.signal(SIGTERM)

        let status = run.wait(timeout: .seconds(30))
        #expect(status == 1, "exit status \(String(describing: status))\n\(harness.transcripts)")
        try expectAccounted(harness, run: run)
        #expect(run.standardError.contains("draining work in flight"))
    }

    /// A drain that would take minutes (thousands of queued items, a long grace) ends at the
    /// second signal, still with its summary and dead letters.
    @Test func aSecondSignalEndsTheDrainButStillWritesDeadLettersAndSummary() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let run = try startRun(harness, grace: "600")
        waitForProgress(harness, run: run)
        #expect(run.isRunning, "\(harness.transcripts)")
        run.signal(SIGTERM)
        #expect(run.wait(until: { run.standardError.contains("draining work in flight") }, timeout: .seconds(5)), "\(harness.transcripts)")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(run.isRunning, "the drain ended by itself; the second signal is not tested: \(harness.transcripts)")
        run.signal(SIGINT)

        let status = run.wait(timeout: .seconds(30))
        #expect(status == 1, "exit status \(String(describing: status))\n\(harness.transcripts)")
        #expect(run.standardError.contains("stopping now"), "\(harness.transcripts)")
        try expectAccounted(harness, run: run)
        let summary = try StopSummary(json: run.standardOutput)
        #expect(summary.deadLettered > 0, "nothing was left to dead-letter; the drain was not cut short")
    }
}
