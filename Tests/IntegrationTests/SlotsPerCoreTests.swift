// A worker gives an exec stage without `replicas` one slot per core; `replicas: 1` keeps one.

import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(3))) struct SlotsPerCoreTests {
    /// The most items the program ran at the same time, from its `start T` / `end T` log lines.
    static func mostAtOnce(_ path: String) -> (most: Int, items: Int) {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let marks = text.split(separator: "\n").compactMap { line -> (Double, Int)? in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let time = Double(parts[1]) else { return nil }
            return (time, parts[0] == "start" ? 1 : -1)
        }
        // At the same instant an end counts before a start: touching intervals do not overlap.
        let sorted = marks.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var running = 0
        var most = 0
        for mark in sorted {
            running += mark.1
            most = max(most, running)
        }
        return (most, marks.filter { $0.1 == 1 }.count)
    }

    /// Runs `count` half-second items through one worker and returns the most that ran at once.
    func run(replicas: String?, count: Int) throws -> Int {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try ((0..<count).map { "item \($0)" }.joined(separator: "\n") + "\n")
            .write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        let log = harness.path("runs.log")
        try """
            import sys, time
            for line in sys.stdin:
                with open(\(String(reflecting: log)), "a") as log:
                    log.write("start %.6f\\n" % time.time())
                time.sleep(0.5)
                with open(\(String(reflecting: log)), "a") as log:
                    log.write("end %.6f\\n" % time.time())
                sys.stdout.write(line)
                sys.stdout.flush()
            """.write(toFile: harness.path("nap.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: slots
            source:
              file: input.txt
            stages:
              - name: nap
                exec:
                  command: [python3, nap.py]
            \(replicas.map { "    replicas: \($0)\n" } ?? "")sink:
              file: out.txt
            """.write(toFile: harness.path("pipeline.yaml"), atomically: true, encoding: .utf8)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("pipeline.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", harness.ipc("events"), "--json",
        ])
        #expect(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")
        try harness.lancompute("worker", ["worker", "--broker", dispatch, "--workdir", harness.path("")])
        #expect(broker.wait(timeout: .seconds(120)) == 0, "\(harness.transcripts)")
        let sink = (try? String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)) ?? ""
        #expect(sink.split(separator: "\n").count == count, "\(harness.transcripts)")
        let measured = Self.mostAtOnce(log)
        #expect(measured.items == count)
        return measured.most
    }

    @Test func anExecStageWithoutReplicasRunsOneItemPerCoreAtOnce() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // Items sleep, so even a loaded machine runs one per slot at once; more than the slots is impossible.
        #expect(try run(replicas: nil, count: cores * 4) == cores)
    }

    @Test func replicasOneKeepsOneItemAtATime() throws {
        #expect(try run(replicas: "1", count: 6) == 1)
    }
}
