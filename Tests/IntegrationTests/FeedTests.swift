// `lancompute feed` into a broker with a pull source: every line confirmed, processed and in the sink.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct FeedTests {
    @Test func feedIsConfirmedAndEveryLineReachesTheSink() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let lines = (1...2000).map { "line \($0)" }
        try lines.joined(separator: "\n").write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: fed
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: shout
                builtin: upper
            sink:
              file: \(harness.path("out.txt"))
              format: lines
            """.write(toFile: harness.path("fed.yaml"), atomically: true, encoding: .utf8)
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("fed.yaml"), "--bind", harness.ipc("dispatch"),
            "--aggregator", harness.ipc("aggregator"), "--events", "none", "--json",
        ])
        try #require(try harness.waitUntilServing(harness.ipc("dispatch")), "\(harness.transcripts)")
        try harness.lancompute("worker", ["worker", "--broker", harness.ipc("dispatch")])
        let feed = try harness.lancompute("feed", ["feed", harness.ipc("source"), harness.path("in.txt"), "--broker", harness.ipc("dispatch")])
        // With --broker, exit 0 means the broker confirmed it accepted every line (LC2024 otherwise).
        #expect(feed.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")

        // A streaming pipeline runs until told to stop; it then drains and writes the sink.
        broker.signal(SIGTERM)
        #expect(broker.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(sink.sorted() == lines.map { $0.uppercased() }.sorted())
    }

    @Test func feedWithoutABrokerToConfirmFailsClearly() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try "a\nb\n".write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        let feed = try harness.lancompute("feed", [
            "feed", harness.ipc("nobody-source"), harness.path("in.txt"), "--broker", harness.ipc("nobody"), "--timeout", "1",
        ])
        #expect(feed.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
        #expect(feed.standardError.contains("error LC202"), "\(harness.transcripts)")
    }
}
