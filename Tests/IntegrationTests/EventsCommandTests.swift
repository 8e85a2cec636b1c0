// Runs `lancompute events` against a live feed, as a user would.

import Foundation
import LANCompute
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(1)))
struct EventsCommandTests {
    @Test func eventsPrintsOneJSONLinePerMessageWithItsTopic() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (feed, endpoint) = try TestFeed.makeFeed()
        let command = try harness.lancompute("events", ["events", endpoint, "--count", "3", "--timeout", "10"])
        try #require(try feed.awaitSubscription(), "the command never subscribed: \(command.transcript)")

        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        metrics.itemReceived(stage: "a")
        feed.publish(.brokerStarted(pipeline: "p", endpoints: ["events": endpoint]))
        feed.publish(metrics.snapshot())
        feed.publish(.nodeLeft(id: "n1", reason: "expired"))
        #expect(command.wait(timeout: .seconds(10)) == 0, "\(command.transcript)")

        let lines = command.standardOutput.split(separator: "\n")
        #expect(lines.count == 3)
        let objects = command.jsonLines
        #expect(objects.map { $0["topic"] as? String } == ["event.broker.started", "metrics", "event.node.left"])
        #expect(objects.allSatisfy { $0["topic"] as? String == $0["type"] as? String })
        #expect(lines[1].hasPrefix(#"{"topic":"metrics","type":"metrics","seq":1,"#))
    }

    @Test func eventsFiltersByTopic() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let publisher = try Socket(.xpub)
        try publisher.bind("tcp://127.0.0.1:*")
        let command = try harness.lancompute("events", ["events", try publisher.lastEndpoint, "--topic", "event.", "--count", "2", "--timeout", "10"])
        try #require(try publisher.poll(.in, timeout: .seconds(20)).contains(.in), "no subscription: \(command.transcript)")
        for (topic, seq) in [("metrics", 1), ("event.node.left", 1), ("event.node.left", 4)] {
            try publisher.send(multipart: [Array(topic.utf8), Array(#"{"type":"\#(topic)","seq":\#(seq)}"#.utf8)])
        }
        #expect(command.wait(timeout: .seconds(10)) == 0, "\(command.transcript)")
        #expect(command.jsonLines.map { $0["seq"] as? Int } == [1, 4])
        #expect(command.jsonLines.allSatisfy { $0["topic"] as? String == "event.node.left" })
    }

    @Test func eventsGivesUpAfterItsTimeout() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (_, endpoint) = try TestFeed.makeFeed()
        let command = try harness.lancompute("events", ["events", endpoint, "--timeout", "0.3"])
        #expect(command.wait(timeout: .seconds(10)) == 3, "\(command.transcript)")
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func eventsStopsCleanlyOnASignal(signal: Int32) throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (feed, endpoint) = try TestFeed.makeFeed()
        let command = try harness.lancompute("events", ["events", endpoint])
        try #require(try feed.awaitSubscription(), "the command never subscribed: \(command.transcript)")
        command.signal(signal)
        #expect(command.wait(timeout: .seconds(5)) == 0, "a stopped events command exits 0: \(command.transcript)")
    }
}
