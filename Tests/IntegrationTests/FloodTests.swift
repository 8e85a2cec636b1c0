// A flood from outside during a run: junk connections, random messages and 8 MiB frames on every broker port leave the run's result unchanged.

import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(4))) struct FloodTests {
    static let itemCount = 4000

    @Test func aFloodDuringARunChangesNothingAndJunkConnectionsAreGoneWithinFiveSeconds() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let lines = (0..<Self.itemCount).map { "item-\($0)" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        // 10 ms an item, so the run outlasts the flood (checked below).
        try """
            version: 1
            name: flood
            source:
              file: input.txt
            stages:
              - name: slow
                builtin: sleep
                options: {duration: 10ms}
            sink:
              file: out.txt
            """.write(toFile: harness.path("flood.yaml"), atomically: true, encoding: .utf8)
        let ports = try (0..<3).map { _ in try DashboardBrowserTests.freePort() }
        let endpoints = ports.map { "tcp://127.0.0.1:\($0)" }
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("flood.yaml"), "--bind", endpoints[0], "--aggregator", endpoints[1], "--events", endpoints[2],
            "--state", "none", "--json",
        ])
        try #require(try harness.waitUntilServing(endpoints[0]), "\(harness.transcripts)")
        try harness.lancompute("worker", ["worker", "--broker", endpoints[0]])

        let flood = try harness.python("flood", [
            ProcessHarness.packageRoot.appendingPathComponent("Tests/IntegrationTests/Peers/flood.py").path,
            "--dispatch", String(ports[0]), "--aggregator", String(ports[1]), "--events", String(ports[2]),
            "--connections", "1000", "--messages", "10000", "--pid", String(broker.process.processIdentifier),
        ])
        try #require(flood.wait(timeout: .seconds(90)) == 0, "\(flood.transcript)")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(flood.standardOutput.utf8)) as? [String: Any], "\(flood.transcript)")
        // The figures mean something only if the broker was still running when the flood ended.
        #expect(report["broker_alive"] as? Bool == true, "the run ended before the flood did: \(report)")
        #expect(report["connections"] as? Int == 1000)
        #expect(report["still_open"] as? Int == 0, "junk connections the broker kept: \(report)")
        #expect((report["longest_open_seconds"] as? Double ?? 99) < 5, "\(report)")
        // 8 MiB frames on three ports and 10,000 messages: the broker's peak stays far from what it
        // was when a single large subscription cost it hundreds of MiB.
        let peak = try #require(report["broker_peak_rss_kb"] as? Int, "\(report)")
        #expect(peak < 300 * 1024, "broker peak RSS \(peak / 1024) MiB: \(report)")

        let status = broker.wait(timeout: .seconds(150))
        #expect(status == 0, "\(harness.transcripts)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(sink.split(separator: "\n").map(String.init).sorted() == lines.sorted())
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsIn == Self.itemCount)
        #expect(summary.itemsOut == Self.itemCount)
        #expect(summary.deadLettered == 0)
        #expect(summary.protocolErrors > 0, "the flood's messages were not even seen")
    }
}
