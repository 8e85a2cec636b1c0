// The broker's PUB side of the metrics and events feed: sequencing, the last-value cache, drops.

import Foundation
import Logging
import ZeroMQ

/// The broker's PUB side: owns an XPUB socket, bound by the caller; confined to the broker thread.
///
/// Every message is two frames, the topic and a JSON object. Each topic has its own
/// sequence (`seq`, from 1, up by one per message on that topic), so a subscriber detects
/// lost messages whatever prefix it chose, and a replayed snapshot never looks like a gap.
///
/// Publishing never blocks. An XPUB drops, per subscriber and silently, what exceeds that
/// subscriber's high-water mark; only the subscriber can see that, through `seq`. A message
/// libzmq refuses outright is counted in ``droppedMessages``.
public final class EventFeed {
    /// The send high-water mark set on the socket: messages queued per subscriber before drops.
    public static let sendHighWaterMark = 10_000
    /// The topic of snapshots.
    public static let metricsTopic = "metrics"

    public let socket: Socket
    /// Messages not handed to libzmq (it would have blocked, or it failed).
    public private(set) var droppedMessages = 0
    /// Messages sequenced so far, all topics together.
    public private(set) var sequence: UInt64 = 0
    /// Subscriptions (including repeated ones) read by ``handleSubscriptions()``.
    public private(set) var subscriptionsSeen = 0
    /// The snapshot last published, with its `seq`: what a new subscriber is sent at once.
    public private(set) var lastSnapshot: MetricsSnapshot?

    /// Called on the broker's thread with every message published (topic and JSON), before it is
    /// sent: the in-process dashboard reads the feed this way, with no socket of its own.
    /// Replays of the cached snapshot are not passed on.
    public var onPublish: ((_ topic: String, _ json: String) -> Void)?

    private var topicSequences: [String: UInt64] = [:]
    private var cachedSnapshotFrames: [[UInt8]]?
    private let logger: Logger

    /// Takes over `socket` (an XPUB, or a PUB without the last-value cache), setting its send
    /// HWM and, for an XPUB, `ZMQ_XPUB_VERBOSE` so that every subscription, even a repeated one, is seen.
    public init(socket: Socket, logger: Logger = Logger(label: "lancompute.metrics.feed")) throws(ZMQError) {
        self.socket = socket
        self.logger = logger
        try socket.set(.sendHighWaterMark, Self.sendHighWaterMark)
        if socket.type == .xpub {
            try socket.set(.xpubVerbose, true)
        }
    }

    /// Publishes an event on `event.<kind>`.
    public func publish(_ event: ClusterEvent) {
        publish(event, at: Date())
    }

    /// Publishes an event stamped with `date`.
    public func publish(_ event: ClusterEvent, at date: Date) {
        let seq = nextSequence(for: event.topic)
        let json = event.json(seq: seq, at: date)
        onPublish?(event.topic, json)
        send([Array(event.topic.utf8), Array(json.utf8)])
    }

    /// Publishes a snapshot on `metrics` and keeps it as the last value for new subscribers.
    public func publish(_ snapshot: MetricsSnapshot) {
        var snapshot = snapshot
        snapshot.seq = nextSequence(for: Self.metricsTopic)
        let frames = [Array(Self.metricsTopic.utf8), Array(snapshot.jsonData())]
        onPublish?(Self.metricsTopic, String(decoding: frames[1], as: UTF8.self))
        lastSnapshot = snapshot
        cachedSnapshotFrames = frames
        send(frames)
    }

    /// Call when ``socket`` is readable: reads every waiting subscription message, and answers
    /// each new subscription that covers `metrics` (the empty prefix included) with the cached
    /// snapshot, unchanged. Subscribers already holding it see its `seq` again and skip it.
    public func handleSubscriptions() {
        guard socket.type == .xpub else { return }
        while true {
            let frames: [[UInt8]]?
            do {
                frames = try socket.tryReceiveMultipart()
            } catch {
                logger.warning("reading subscriptions failed", metadata: ["error": "\(error)"])
                return
            }
            guard let frames else { return }
            // A subscription is one frame: 1 (subscribe) or 0 (unsubscribe), then the prefix.
            guard frames.count == 1, let first = frames[0].first, first == 1 else { continue }
            subscriptionsSeen += 1
            let prefix = frames[0].dropFirst()
            if Self.metricsTopic.utf8.starts(with: prefix), let cachedSnapshotFrames {
                send(cachedSnapshotFrames)
            }
        }
    }

    private func nextSequence(for topic: String) -> UInt64 {
        let seq = (topicSequences[topic] ?? 0) + 1
        topicSequences[topic] = seq
        sequence += 1
        return seq
    }

    private func send(_ frames: [[UInt8]]) {
        do {
            if try !socket.trySend(multipart: frames) {
                droppedMessages += 1
            }
        } catch {
            droppedMessages += 1
            if droppedMessages == 1 || droppedMessages.isMultiple(of: 10_000) {
                logger.warning("publishing on the feed failed", metadata: ["error": "\(error)", "dropped": "\(droppedMessages)"])
            }
        }
    }
}

@available(*, unavailable)
extension EventFeed: Sendable {}
