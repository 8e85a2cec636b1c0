// Items slower than their stage timeout: retried, and whatever comes late, each ends in exactly one of the sink and the dead letters.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct LateOutputTests {
    /// `sleep` does not watch the stage timeout, so every timed-out attempt still sends its output,
    /// late, straight to the aggregator, while the broker has already retried or dead-lettered the item.
    /// 450ms: every attempt is late. 300ms: a race between the output and the timeout.
    @Test(arguments: ["450ms", "300ms"])
    func aLateOutputNeverPutsAnItemInBothPlaces(duration: String) throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let items = (0..<24).map { String(format: "late-%02d", $0) }
        try (items.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: late
            source:
              file: input.txt
            stages:
              - name: slow
                builtin: sleep
                options: {duration: \(duration)}
                replicas: 4
                timeout: 300ms
                max-attempts: 2
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
        for index in 1...2 { try harness.lancompute("worker-\(index)", ["worker", "--broker", dispatch]) }

        let status = broker.wait(timeout: .seconds(60))
        #expect(status != nil, "the run did not end\n\(harness.transcripts)")
        let ledger = try ItemLedger(sinkPath: harness.path("out.txt"), deadLetterPath: harness.path("dead.jsonl"))
        ledger.expectEachExactlyOnce(items, context: "sink \(ledger.sink.sorted())\ndead \(ledger.deadItems.sorted())\n\(harness.transcripts)")
        #expect(status == (ledger.deadLetters.isEmpty ? 0 : 1), "exit status \(String(describing: status))")
        for letter in ledger.deadLetters {
            #expect(letter.attempts == 2 && letter.reason.contains("2 of 2 attempts"), "\(letter.reason)")
        }
        // Not every item is dead-lettered: an attempt's late output may still come before the item
        // is given up on, and is then its one output.
        if duration == "450ms" {
            #expect(!ledger.deadLetters.isEmpty, "no item was given up on; the test proves nothing")
        }
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsOut == ledger.sink.count && summary.deadLettered == ledger.deadLetters.count, "\(summary)")
    }
}
