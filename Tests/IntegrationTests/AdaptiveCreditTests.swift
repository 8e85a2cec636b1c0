// A worker behind a link with a 100 ms round trip: fixed credit 8 is held to 8 items per round trip, adaptive credit is not.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(4))) struct AdaptiveCreditTests {
    /// One run: broker, the delay proxy in front of its dispatch endpoint, the worker of stage `work` through the proxy.
    struct Run {
        /// Items a second into the sink, from the time a fifth of them were there to the last.
        var itemsPerSecond: Double
        var sinkLines: [String]
        var summary: Summary
        /// `lancompute nodes --json` while the run went on (nil when it could not be had).
        var nodes: [String: Any]?
    }

    static func lineCount(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    static func run(credit: Int?, items count: Int) throws -> Run {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let lines = (0..<count).map { "item \($0)" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        // A blocking stage (1 ms an item) on two slots: its default credit is 2 x 4 = 8, the fixed run's too.
        try """
            version: 1
            name: far
            source:
              file: input.txt
            stages:
              - name: work
                builtin: sleep
                options: {duration: 1ms}
                replicas: 2
            \(credit.map { "    credit: \($0)" } ?? "")
              - name: out
                builtin: identity
                from: work
                chain: false
            sink:
              file: out.txt
            """.write(toFile: harness.path("pipeline.yaml"), atomically: true, encoding: .utf8)
        let port = try DashboardBrowserTests.freePort()
        let dispatch = "tcp://127.0.0.1:\(port)"
        let proxy = try harness.python("proxy", ["Scripts/chaos/tcp_delay_proxy.py", "127.0.0.1:\(port)", "--delay-ms", "50"])
        #expect(proxy.wait(until: { proxy.standardOutput.hasPrefix("listening ") }, timeout: .seconds(10)), "\(proxy.transcript)")
        let proxyPort = proxy.standardOutput.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("pipeline.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", harness.ipc("events"), "--json",
        ])
        #expect(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")
        // The distant worker runs `work`, whose outputs go back through the proxy in its REPLYs; the final
        // stage's worker is local (a final stage's outputs go straight to the aggregator, which would
        // free credit a one-way delay after the REQUEST instead of a round trip).
        try harness.lancompute("worker", ["worker", "--broker", "tcp://127.0.0.1:\(proxyPort)", "--stages", "work", "--log-level", "debug"])
        try harness.lancompute("local", ["worker", "--broker", dispatch, "--stages", "out"])

        // The sink as it grows: its rate from a fifth of the items in to the last.
        let sink = harness.path("out.txt")
        // Wall-clock times, as the sink's modification time (its last line) is one.
        var fifthAt: Date?
        var nodes: [String: Any]?
        let begin = ContinuousClock.now
        while ContinuousClock.now - begin < .seconds(120), broker.isRunning {
            let done = lineCount(sink)
            if fifthAt == nil, done >= count / 5 { fifthAt = Date() }
            if done >= count / 2, nodes == nil {
                let report = try ProcessHarness.run(["nodes", dispatch, "--json"], timeout: .seconds(20))
                nodes = (try? JSONSerialization.jsonObject(with: Data(report.standardOutput.utf8))) as? [String: Any]
            }
            if done >= count { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(broker.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        var rate = 0.0
        let lastAt = (try? FileManager.default.attributesOfItem(atPath: sink))?[.modificationDate] as? Date
        if let fifthAt, let lastAt, lineCount(sink) >= count {
            rate = Double(count - count / 5) / max(lastAt.timeIntervalSince(fifthAt), 0.001)
        }
        let written = (try? String(contentsOfFile: sink, encoding: .utf8)) ?? ""
        return Run(itemsPerSecond: rate, sinkLines: written.split(separator: "\n").map(String.init),
                   summary: try Summary(json: broker.standardOutput), nodes: nodes)
    }

    @Test func adaptiveCreditFillsALinkThatFixedCreditEightCannot() throws {
        // Credit 8 over a 100 ms round trip: at most 8 items per round trip, 80 a second, however fast the worker.
        let fixed = try Self.run(credit: 8, items: 400)
        #expect(fixed.summary.itemsOut == 400 && fixed.summary.deadLettered == 0)
        #expect(Set(fixed.sinkLines).count == 400 && fixed.sinkLines.count == 400)
        #expect(fixed.itemsPerSecond > 0 && fixed.itemsPerSecond <= 90, "fixed credit 8: \(fixed.itemsPerSecond) items/s; is the proxy delaying? \(fixed.sinkLines.count) s")

        let count = 8000
        let adaptive = try Self.run(credit: nil, items: count)
        #expect(adaptive.summary.itemsOut == count && adaptive.summary.deadLettered == 0)
        // Every item in the sink exactly once.
        #expect(adaptive.sinkLines.count == count)
        #expect(Set(adaptive.sinkLines) == Set((0..<count).map { "item \($0)" }))
        // Five times the bound credit 8 puts on this link.
        #expect(adaptive.itemsPerSecond >= 5 * 80, "adaptive: \(adaptive.itemsPerSecond) items/s against fixed \(fixed.itemsPerSecond)")

        // `lancompute nodes` saw the grown credit and the measured round trip.
        let node = (adaptive.nodes?["nodes"] as? [[String: Any]])?.first { ($0["stages"] as? [String]) == ["work"] }
        let credit = (node?["credits"] as? [String: Any])?["work"] as? Int
        #expect((credit ?? 0) > 40, "nodes: \(String(describing: adaptive.nodes))")
        let rtt = node?["rtt_ms"] as? Double
        #expect((rtt ?? 0) >= 95 && (rtt ?? .infinity) < 1000, "nodes: \(String(describing: adaptive.nodes))")
    }
}
