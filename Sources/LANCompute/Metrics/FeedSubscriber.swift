// The consuming side of the feed: a SUB that parses messages and reports sequence gaps.

import Foundation
import Logging
import ZeroMQ

/// One message from the feed.
public struct FeedMessage: Sendable, Equatable {
    /// The topic frame, e.g. `metrics` or `event.node.joined`.
    public let topic: String
    /// The JSON object, as received.
    public let json: String
    /// The message's sequence number on its topic (0 if it carried none).
    public let seq: UInt64
    /// Messages on this topic missed just before this one (0 when none, or unknown).
    public let gap: UInt64

    public init(topic: String, json: String, seq: UInt64, gap: UInt64) {
        self.topic = topic
        self.json = json
        self.seq = seq
        self.gap = gap
    }

    /// The JSON object with a `topic` key put first: one line for `lancompute events`.
    public var jsonLineWithTopic: String {
        let topicMember = "\"topic\":" + JSONText.string(topic).serialized
        let trimmed = json.drop { $0.isWhitespace }
        guard trimmed.first == "{" else {
            // Not an object (a foreign publisher): wrap it rather than lose it.
            return "{\(topicMember),\"payload\":\(JSONText.string(json).serialized)}"
        }
        let rest = trimmed.dropFirst()
        let isEmptyObject = rest.drop { $0.isWhitespace }.first == "}"
        return "{" + topicMember + (isEmptyObject ? "" : ",") + rest
    }

    /// The snapshot, when this is a `metrics` message.
    public func snapshot() throws -> MetricsSnapshot {
        try MetricsSnapshot.decode(json: json)
    }
}

/// A feed consumer for the CLI and tests: connects a SUB, yields parsed messages and reports sequence gaps.
///
/// Gaps are tracked per topic: `seq` rises by one per message on a topic, so a jump means
/// the SUB (or the publisher, at its HWM) dropped messages. A `seq` equal to the last one seen
/// on the topic is a replay of the cached snapshot and is skipped; a lower one means the
/// publisher restarted, and counting starts again. Confined to one thread.
public final class FeedSubscriber {
    public let endpoint: String
    public let topicPrefix: String
    /// Messages reported missing so far (the sum of every ``FeedMessage/gap``).
    public private(set) var missedMessages: UInt64 = 0
    /// Replays (a `seq` seen already) skipped so far.
    public private(set) var duplicatesSkipped = 0
    /// Messages that were not a topic frame plus a JSON object with `seq`, passed on with `seq` 0.
    public private(set) var unsequencedMessages = 0

    private let socket: Socket
    private var lastSequence: [String: UInt64] = [:]

    /// Connects to `endpoint` (the broker's PUB, e.g. `tcp://127.0.0.1:5556`) and subscribes to `topicPrefix`.
    public init(
        endpoint: String, topicPrefix: String = "", receiveHighWaterMark: Int? = nil, context: Context = .shared,
        curve: CurveSetup? = nil
    ) throws {
        self.endpoint = endpoint
        self.topicPrefix = topicPrefix
        socket = try SocketFactory(context: context, curve: curve).socket(.eventsSubscriber(receiveHighWaterMark: receiveHighWaterMark))
        try socket.subscribe(topicPrefix)
        try socket.connect(endpoint)
    }

    /// The next message, waiting up to `timeout`; nil if none came in time.
    public func next(timeout: Duration) throws -> FeedMessage? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if let frames = try socket.tryReceiveMultipart() {
                if let message = accept(frames) { return message }
                continue
            }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            _ = try socket.poll(.in, timeout: remaining)
        }
    }

    /// Closes the SUB; later ``next(timeout:)`` calls throw.
    public func close() {
        socket.close()
    }

    private func accept(_ frames: [[UInt8]]) -> FeedMessage? {
        let topic = String(decoding: frames.first ?? [], as: UTF8.self)
        let json = frames.count > 1 ? String(decoding: frames[1], as: UTF8.self) : ""
        guard frames.count == 2, let seq = Self.sequenceNumber(in: frames[1]) else {
            unsequencedMessages += 1
            return FeedMessage(topic: topic, json: json, seq: 0, gap: 0)
        }
        var gap: UInt64 = 0
        if let last = lastSequence[topic] {
            if seq == last {
                duplicatesSkipped += 1
                return nil
            }
            if seq > last { gap = seq - last - 1 }
        }
        lastSequence[topic] = seq
        missedMessages += gap
        return FeedMessage(topic: topic, json: json, seq: seq, gap: gap)
    }

    static func sequenceNumber(in json: [UInt8]) -> UInt64? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
              let number = object["seq"] as? NSNumber else { return nil }
        let value = number.int64Value
        return value > 0 ? UInt64(value) : nil
    }
}

@available(*, unavailable)
extension FeedSubscriber: Sendable {}
