// The subscription messages XPUB receives and XSUB sends: one byte (1 subscribe, 0 unsubscribe) then the topic.

/// A subscription or unsubscription as it travels upstream from SUB/XSUB to PUB/XPUB.
///
/// An XPUB socket receives these as single frames; an XSUB socket sends them to subscribe.
public struct Subscription: Sendable, Hashable {
    /// True to subscribe, false to unsubscribe.
    public var isSubscribe: Bool
    /// The topic prefix (empty: everything).
    public var topic: [UInt8]

    public init(isSubscribe: Bool, topic: [UInt8]) {
        self.isSubscribe = isSubscribe
        self.topic = topic
    }

    /// Parses a frame received on XPUB; nil for a frame that is not a subscription
    /// (an ordinary message sent upstream, which XPUB passes on too).
    public init?(frame: some Collection<UInt8>) {
        guard let first = frame.first, first <= 1 else { return nil }
        self.isSubscribe = first == 1
        self.topic = Array(frame.dropFirst())
    }

    /// The topic as UTF-8 text.
    public var topicString: String { String(decoding: topic, as: UTF8.self) }

    /// The frame to send on XSUB.
    public var frame: [UInt8] { [isSubscribe ? 1 : 0] + topic }
}
