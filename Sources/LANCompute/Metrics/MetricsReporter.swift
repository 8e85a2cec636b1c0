// Publishes a pipeline's snapshot everywhere it is read: the events feed and the HTTP exposition.

import Foundation

/// Publishes a pipeline's snapshot on the feed and refreshes the HTTP exposition; confined to
/// the broker thread (not Sendable).
///
/// It does not pace itself: the broker's poll loop decides when. The loop polls for at most
/// 100 ms, and after a poll that ends `metricsInterval` or more after the last snapshot it brings
/// the gauges up to date and calls ``publishNow(date:)``; a busy loop therefore publishes late,
/// never twice to catch up. At the end of a run the broker publishes once more, so the last
/// snapshot a subscriber sees has every completion in it.
public final class MetricsReporter {
    public let metrics: PipelineMetrics
    public let feed: EventFeed?
    public let httpServer: DashboardServer?
    /// Snapshots published so far.
    public private(set) var snapshotsPublished = 0

    public init(metrics: PipelineMetrics, feed: EventFeed?, httpServer: DashboardServer? = nil) {
        self.metrics = metrics
        self.feed = feed
        self.httpServer = httpServer
        httpServer?.update(exposition: metrics.prometheusText())
    }

    /// Publishes a snapshot now, on the feed and to the HTTP exposition.
    public func publishNow(date: Date = Date()) {
        let snapshot = metrics.snapshot(at: date)
        feed?.publish(snapshot)
        httpServer?.update(exposition: metrics.prometheusText())
        snapshotsPublished += 1
    }
}

@available(*, unavailable)
extension MetricsReporter: Sendable {}
