// Runs `lancompute top` against a live feed, as a user would.
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

@Suite(.serialized, .timeLimit(.minutes(1)), .enabled(if: FeedCommand.topAvailable, "the binary has no top command yet"))
struct TopCommandTests {
    @Test func topOncePrintsTheCachedSnapshot() throws {
        let (feed, endpoint) = try FeedCommand.makeFeed()
        let metrics = PipelineMetrics(pipeline: "wordcount", stageNames: ["split", "count"])
        metrics.itemReceived(stage: "split")
        metrics.itemCompleted(stage: "split", latency: .milliseconds(4))
        metrics.updateNode(NodeMetrics(id: "mini-1", host: "mac-mini.local", workers: 4))
        feed.publish(metrics.snapshot())  // before anyone listens: only the cache can deliver it

        let command = try FeedCommand(["top", endpoint, "--once", "--timeout", "10"])
        defer { command.terminate() }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while command.isRunning && clock.now < deadline {
            try feed.serviceSubscriptions(for: .milliseconds(20))
        }
        #expect(command.exitStatus == 0, "\(command.errorOutput)")
        let output = command.output
        #expect(output.contains("pipeline wordcount"))
        #expect(output.contains("STAGE"))
        #expect(output.split(separator: "\n").contains { $0.hasPrefix("split") && $0.contains(" 1 ") })
        #expect(output.contains("mini-1"))
        #expect(!output.contains("\u{1B}["))
    }

    @Test func topStreamsPlainLinesWhenNotOnATerminalAndStopsOnInterrupt() throws {
        let (feed, endpoint) = try FeedCommand.makeFeed()
        let command = try FeedCommand(["top", endpoint])
        defer { command.terminate() }
        try #require(try feed.awaitSubscription(), "the command never subscribed: \(command.errorOutput)")
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        feed.publish(metrics.snapshot())
        feed.publish(.nodeJoined(id: "n1", host: "alpha", capabilities: [:]))
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while command.output.split(separator: "\n").count < 2 && clock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(command.process.processIdentifier, SIGINT)
        #expect(command.waitForExit(timeout: .seconds(5)))
        #expect(command.exitStatus == 0)
        let lines = command.output.split(separator: "\n")
        #expect(lines.first?.contains(" stage=a rate=") == true)
        #expect(lines.contains { $0.contains("event.node.joined") && $0.contains("id=n1") })
    }
}
