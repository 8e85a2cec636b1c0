// Paces snapshots for the broker's poll loop: when the next one is due, and publishing it everywhere.

import Foundation

/// Publishes a pipeline's snapshot on the feed and refreshes the HTTP exposition once per
/// interval; confined to the broker thread (not Sendable).
///
/// The broker uses ``timeUntilDue(at:)`` as (an upper bound of) its poll timeout and calls
/// ``tick(at:)`` after every poll; at the end of a run, ``publishNow()`` sends the final
/// snapshot so that the last one a subscriber sees has every completion in it.
public final class MetricsReporter {
    public let metrics: PipelineMetrics
    public let feed: EventFeed?
    public let httpServer: MetricsHTTPServer?
    public let interval: Duration
    /// Snapshots published so far.
    public private(set) var snapshotsPublished = 0
    private var due: ContinuousClock.Instant

    public init(
        metrics: PipelineMetrics, feed: EventFeed?, httpServer: MetricsHTTPServer? = nil,
        interval: Duration = .seconds(1), start: ContinuousClock.Instant = .now
    ) {
        precondition(interval > .zero, "the metrics interval must be positive")
        self.metrics = metrics
        self.feed = feed
        self.httpServer = httpServer
        self.interval = interval
        self.due = start + interval
        httpServer?.update(exposition: metrics.prometheusText())
    }

    /// How long until the next snapshot is due (zero if it is late).
    public func timeUntilDue(at now: ContinuousClock.Instant = .now) -> Duration {
        max(.zero, now.duration(to: due))
    }

    /// Publishes a snapshot if one is due; returns whether it did.
    @discardableResult
    public func tick(at now: ContinuousClock.Instant = .now) -> Bool {
        guard now >= due else { return false }
        publishNow()
        // Keep the cadence, but never try to catch up on intervals missed while the loop was busy.
        due += interval
        if due <= now { due = now + interval }
        return true
    }

    /// Publishes a snapshot now (the final one of a run, or after something worth showing at once).
    public func publishNow(date: Date = Date()) {
        let snapshot = metrics.snapshot(at: date)
        feed?.publish(snapshot)
        httpServer?.update(exposition: metrics.prometheusText())
        snapshotsPublished += 1
    }
}

@available(*, unavailable)
extension MetricsReporter: Sendable {}
