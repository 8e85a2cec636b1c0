// Runs `lancompute top` against a live feed, as a user would.

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
struct TopCommandTests {
    @Test func topOnceIntoAPipePrintsTheCachedSnapshotAsPlainLines() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (feed, endpoint) = try TestFeed.makeFeed()
        let metrics = PipelineMetrics(pipeline: "wordcount", stageNames: ["split", "count"])
        metrics.itemReceived(stage: "split")
        metrics.itemCompleted(stage: "split", latency: .milliseconds(4))
        metrics.updateNode(NodeMetrics(id: "mini-1", host: "mac-mini.local", workers: 4))
        feed.publish(metrics.snapshot())  // before anyone listens: only the cache can deliver it

        let command = try harness.lancompute("top", ["top", endpoint, "--once", "--timeout", "10"])
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while command.isRunning && clock.now < deadline {
            try feed.serviceSubscriptions(for: .milliseconds(20))
        }
        #expect(command.wait(timeout: .seconds(1)) == 0, "\(command.transcript)")
        // Standard output is a file here, not a terminal: key=value lines, no table, no escape codes.
        let lines = command.standardOutput.split(separator: "\n").map { $0.split(separator: " ").dropFirst() }
        #expect(lines.contains { $0.contains("stage=split") && $0.contains("completed=1") }, "\(command.transcript)")
        #expect(lines.contains { $0.contains("stage=count") && $0.contains("completed=0") })
        #expect(lines.contains { $0.contains("node=mini-1") && $0.contains("workers=4") })
        #expect(!command.standardOutput.contains("STAGE"))
        #expect(!command.standardOutput.contains("\u{1B}["))
    }

    @Test func topStreamsPlainLinesWhenNotOnATerminalAndStopsOnInterrupt() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (feed, endpoint) = try TestFeed.makeFeed()
        let command = try harness.lancompute("top", ["top", endpoint])
        try #require(try feed.awaitSubscription(), "the command never subscribed: \(command.transcript)")
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        feed.publish(metrics.snapshot())
        feed.publish(.nodeJoined(id: "n1", host: "alpha", capabilities: [:]))
        _ = command.wait(until: { command.standardOutput.split(separator: "\n").count >= 2 }, timeout: .seconds(10))
        command.signal(SIGINT)
        #expect(command.wait(timeout: .seconds(5)) == 0, "\(command.transcript)")
        let lines = command.standardOutput.split(separator: "\n")
        #expect(lines.first?.contains(" stage=a rate=") == true)
        #expect(lines.contains { $0.contains("event.node.joined") && $0.contains("id=n1") })
    }
}
