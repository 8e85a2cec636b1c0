// Checks MetricsReporter's pacing with explicit instants, and that it feeds the PUB and HTTP sides.

import Foundation
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct MetricsReporterTests {
    @Test func snapshotsFollowTheInterval() {
        let start = ContinuousClock.now
        let reporter = MetricsReporter(
            metrics: PipelineMetrics(pipeline: "p", stageNames: []), feed: nil, interval: .seconds(1), start: start)
        #expect(reporter.timeUntilDue(at: start) == .seconds(1))
        #expect(!reporter.tick(at: start + .milliseconds(999)))
        #expect(reporter.tick(at: start + .seconds(1)))
        #expect(!reporter.tick(at: start + .milliseconds(1500)))
        #expect(reporter.timeUntilDue(at: start + .milliseconds(1500)) == .milliseconds(500))
        // A loop that stalled for several intervals publishes once, not once per missed interval.
        #expect(reporter.tick(at: start + .seconds(5)))
        #expect(!reporter.tick(at: start + .milliseconds(5500)))
        #expect(reporter.tick(at: start + .seconds(6)))
        #expect(reporter.snapshotsPublished == 3)
        #expect(reporter.timeUntilDue(at: start + .seconds(60)) == .zero)
    }

    @Test func publishingReachesTheFeedAndTheHTTPServer() throws {
        let (feed, _) = try FeedHarness.makeFeed()
        let server = try MetricsHTTPServer(host: "127.0.0.1", port: 0)
        defer { server.stop() }
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        let reporter = MetricsReporter(metrics: metrics, feed: feed, httpServer: server)
        metrics.itemReceived(stage: "a")
        metrics.itemCompleted(stage: "a", latency: .milliseconds(2))
        reporter.publishNow()
        #expect(feed.lastSnapshot?.stages.first?.completed == 1)
        #expect(feed.lastSnapshot?.seq == 1)
        let body = try MetricsHTTPServerTests.get("/metrics", port: server.boundPort).body
        #expect(body.contains(#"lancompute_stage_items_total{pipeline="p",stage="a",outcome="completed"} 1"#))
    }
}
