// Checks that MetricsReporter publishes one snapshot per call, to the PUB and HTTP sides.

import Foundation
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct MetricsReporterTests {
    @Test func everyPublishIsOneSnapshotWithTheNextSequenceNumber() throws {
        let (feed, _) = try FeedHarness.makeFeed()
        let reporter = MetricsReporter(metrics: PipelineMetrics(pipeline: "p", stageNames: []), feed: feed)
        #expect(reporter.snapshotsPublished == 0, "creating a reporter publishes nothing: the broker's loop decides when")
        reporter.publishNow()
        reporter.publishNow()
        #expect(reporter.snapshotsPublished == 2)
        #expect(feed.lastSnapshot?.seq == 2)
    }

    @Test func publishingReachesTheFeedAndTheHTTPServer() throws {
        let (feed, _) = try FeedHarness.makeFeed()
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        defer { server.stop() }
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        let reporter = MetricsReporter(metrics: metrics, feed: feed, httpServer: server)
        metrics.itemReceived(stage: "a")
        metrics.itemCompleted(stage: "a", latency: .milliseconds(2))
        reporter.publishNow()
        #expect(feed.lastSnapshot?.stages.first?.completed == 1)
        #expect(feed.lastSnapshot?.seq == 1)
        let body = try DashboardServerTests.get("/metrics", port: server.boundPort).body
        #expect(body.contains(#"lancompute_stage_items_total{pipeline="p",stage="a",outcome="completed"} 1"#))
    }
}
