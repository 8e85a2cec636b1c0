// Kills a worker process with SIGKILL mid-run and checks that every item still reaches the sink exactly once.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(5))) struct KillRecoveryTests {
    static func lineCount(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
    }

    @Test func sigkillOfOneOfTwoWorkersLosesAndDuplicatesNothing() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))

        let count = 100_000
        let input = (1...count).map { String(format: "item-%06d", $0) }
        try (input.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("input.txt"), atomically: true, encoding: .utf8)
        try """
            import sys
            for line in sys.stdin:
                sys.stdout.write("done:" + line.rstrip("\\n") + "\\n")
                sys.stdout.flush()
            """.write(to: directory.appendingPathComponent("echo.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: kill-test
            source:
              file: input.txt
            stages:
              - name: echo
                exec:
                  command: [python3, echo.py]
                  mode: stream
                max-attempts: 5
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(to: directory.appendingPathComponent("topology.yaml"), atomically: true, encoding: .utf8)

        let dispatch = harness.ipc("dispatch")
        let events = try harness.watchEvents(harness.ipc("events"))
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("topology.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", harness.ipc("events"), "--json",
        ])
        try harness.lancompute("worker-1", ["worker", "--broker", dispatch, "--workdir", harness.path("")])
        let victim = try harness.lancompute("worker-2", ["worker", "--broker", dispatch, "--workdir", harness.path("")])

        // Kill one worker once the run is well under way, with items certainly in flight on it.
        let sink = directory.appendingPathComponent("out.txt").path
        let start = ContinuousClock.now
        while Self.lineCount(sink) < count / 5 && ContinuousClock.now - start < .seconds(120) && broker.isRunning {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let before = Self.lineCount(sink)
        victim.signal(SIGKILL)
        #expect(before < count, "the run finished before the worker could be killed; the test proves nothing")

        let status = broker.wait(timeout: .seconds(180))
        #expect(status == 0, "broker exit status \(String(describing: status)); log:\n\(harness.transcripts)")

        let lines = try String(contentsOfFile: sink, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == count, "sink has \(lines.count) lines, expected \(count)")
        #expect(Set(lines).count == lines.count, "duplicates in the sink")
        #expect(Set(lines) == Set(input.map { "done:" + $0 }))
        let summary = broker.standardOutput.split(separator: "\n").last { $0.hasPrefix("{") }
        let json = try #require(summary.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(json["itemsOut"] as? Int == count)
        #expect(json["deadLettered"] as? Int == 0)
        #expect(events.wait(until: { !events.events("event.worker.expired").isEmpty }, timeout: .seconds(5)),
                "the feed shows no expired worker: the broker never noticed the dead one:\n\(harness.transcripts)")
    }
}
