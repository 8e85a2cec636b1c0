// Runs `lancompute events` against a live feed, as a user would.
// Skipped while the built binary does not offer the command yet.

import Foundation
import LANCompute
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(1)), .enabled(if: FeedCommand.eventsAvailable, "the binary has no events command yet"))
struct EventsCommandTests {
    @Test func eventsPrintsOneJSONLinePerMessageWithItsTopic() throws {
        let (feed, endpoint) = try FeedCommand.makeFeed()
        let command = try FeedCommand(["events", endpoint, "--count", "3", "--timeout", "10"])
        defer { command.terminate() }
        try #require(try feed.awaitSubscription(), "the command never subscribed: \(command.errorOutput)")

        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        metrics.itemReceived(stage: "a")
        feed.publish(.brokerStarted(pipeline: "p", endpoints: ["events": endpoint]))
        feed.publish(metrics.snapshot())
        feed.publish(.nodeLeft(id: "n1", reason: "expired"))
        #expect(command.waitForExit(timeout: .seconds(10)))
        #expect(command.exitStatus == 0, "\(command.errorOutput)")

        let lines = command.output.split(separator: "\n")
        #expect(lines.count == 3)
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.map { $0["topic"] as? String } == ["event.broker.started", "metrics", "event.node.left"])
        #expect(objects.allSatisfy { $0["topic"] as? String == $0["type"] as? String })
        #expect(lines[1].hasPrefix(#"{"topic":"metrics","type":"metrics","seq":1,"#))
    }

    @Test func eventsFiltersByTopicAndReportsGaps() throws {
        let publisher = try Socket(.xpub)
        try publisher.bind("tcp://127.0.0.1:*")
        let command = try FeedCommand(["events", try publisher.lastEndpoint, "--topic", "event.", "--count", "2", "--timeout", "10"])
        defer { command.terminate() }
        try #require(try publisher.poll(.in, timeout: .seconds(20)).contains(.in), "no subscription: \(command.errorOutput)")
        for (topic, seq) in [("metrics", 1), ("event.node.left", 1), ("event.node.left", 4)] {
            try publisher.send(multipart: [Array(topic.utf8), Array(#"{"type":"\#(topic)","seq":\#(seq)}"#.utf8)])
        }
        #expect(command.waitForExit(timeout: .seconds(10)))
        #expect(command.output.split(separator: "\n").count == 2)
        #expect(!command.output.contains(#""topic":"metrics""#))
        #expect(command.errorOutput.contains("2 message(s) missed on event.node.left before seq 4"))
    }

    @Test func eventsGivesUpAfterItsTimeout() throws {
        let (_, endpoint) = try FeedCommand.makeFeed()
        let command = try FeedCommand(["events", endpoint, "--timeout", "0.3"])
        defer { command.terminate() }
        #expect(command.waitForExit(timeout: .seconds(10)))
        #expect(command.exitStatus == 3)
    }
}
