// What the dashboard shows, shared between the thread that feeds it and the HTTP server's tasks.

import Foundation
import Synchronization

/// The dashboard's memory of a pipeline: the graph, the last minutes of snapshots, recent events,
/// dead letters, each node's stages, and the Prometheus text; plus the live streams of the pages
/// that are open.
///
/// One thread feeds it (the broker's, through ``EventFeed/onPublish``, or the thread reading a
/// remote feed in `lancompute dashboard`); the HTTP server's tasks read it and subscribe to it.
/// Every access takes the mutex for a few copies only, and ``accept(topic:json:)`` never waits
/// for a page: each stream keeps at most ``streamBufferLimit`` messages, so a page that stopped
/// reading loses its oldest ones rather than slowing the broker.
public final class DashboardState: Sendable {
    /// Snapshots kept for the plots: ten minutes at the default interval of one second.
    public static let historyLimit = 600
    /// Events kept for a page that opens late.
    public static let eventLimit = 200
    /// Dead letters kept for a page that opens late.
    public static let deadLetterLimit = 200
    /// Messages a page's stream holds before it drops the oldest.
    public static let streamBufferLimit = 2_000

    /// One message for the pages: an SSE event name and its JSON.
    public struct Message: Sendable, Equatable {
        public let event: String
        public let json: String

        /// The message in the `text/event-stream` format: `event:`, one `data:` per line, a blank line.
        public var serverSentEvent: String {
            var text = "event: \(event)\n"
            for line in json.split(separator: "\n", omittingEmptySubsequences: false) { text += "data: \(line)\n" }
            return text + "\n"
        }
    }

    private struct Contents {
        var exposition: String?
        var graph: String?
        var snapshots: [String] = []
        var lastMetricsSeq: UInt64?
        var events: [String] = []
        var deadLetters: [String] = []
        /// Stage names per node, from `event.worker.ready`.
        var stagesByNode: [String: Set<String>] = [:]
        var streams: [Int: AsyncStream<Message>.Continuation] = [:]
        var nextStream = 0
        var lastMessage: Date?
    }

    private let contents = Mutex(Contents())
    /// Where the state comes from, shown on the page: `broker` or the feed's endpoint.
    public let origin: String

    public init(origin: String) {
        self.origin = origin
    }

    // MARK: Feeding

    /// Takes one message of the feed (topic and JSON object, as published) and passes it on to every open page.
    public func accept(topic: String, json: String) {
        let event: String
        var payload = json
        if topic == EventFeed.metricsTopic {
            event = "metrics"
        } else if topic.hasPrefix("event.") {
            event = "event"
            payload = FeedMessage(topic: topic, json: json, seq: 0, gap: 0).jsonLineWithTopic
        } else {
            return  // a topic this page does not know (new ones may be added)
        }
        let fields = event == "event" ? Self.fields(of: json) : [:]
        contents.withLock { contents in
            if event == "metrics" {
                // The feed's last-value cache replays a snapshot to late subscribers: keep it once.
                let seq = FeedSubscriber.sequenceNumber(in: Array(json.utf8))
                if let seq, seq == contents.lastMetricsSeq { return }
                contents.lastMetricsSeq = seq
                Self.append(payload, to: &contents.snapshots, limit: Self.historyLimit)
            } else {
                Self.append(payload, to: &contents.events, limit: Self.eventLimit)
                if topic == "event.item.dead-lettered" {
                    Self.append(payload, to: &contents.deadLetters, limit: Self.deadLetterLimit)
                }
                if topic == "event.worker.ready", let node = fields["node"], let stage = fields["stage"] {
                    contents.stagesByNode[node, default: []].insert(stage)
                }
            }
            contents.lastMessage = Date()
            let message = Message(event: event, json: payload)
            for stream in contents.streams.values { stream.yield(message) }
        }
    }

    /// Sets the pipeline's graph (``DashboardGraph``), once known, and sends it to every open page.
    public func setGraph(_ graph: DashboardGraph) {
        let json = graph.jsonText.serialized
        contents.withLock { contents in
            contents.graph = json
            for stream in contents.streams.values { stream.yield(Message(event: "graph", json: json)) }
        }
    }

    /// Replaces the text served at /metrics; nil when this server has none (a remote dashboard).
    public func setExposition(_ text: String?) {
        contents.withLock { $0.exposition = text }
    }

    /// Ends every open page's stream once it has sent what it holds (the server is stopping);
    /// returns how many there were.
    @discardableResult
    public func finishStreams() -> Int {
        let streams = contents.withLock { contents in
            defer { contents.streams = [:] }
            return Array(contents.streams.values)
        }
        for stream in streams { stream.finish() }
        return streams.count
    }

    // MARK: Reading

    public var exposition: String? { contents.withLock { $0.exposition } }

    public var hasGraph: Bool { contents.withLock { $0.graph != nil } }

    /// Pages with a live stream open now.
    public var openStreams: Int { contents.withLock { $0.streams.count } }

    /// Everything a page needs to draw itself, as one JSON object: `origin`, `graph` (or null),
    /// `snapshots` (oldest first), `events`, `dead_letters`, `node_stages` (node → stage names).
    public func stateJSON() -> String {
        contents.withLock { Self.stateJSON(origin: origin, $0) }
    }

    /// A stream that starts with the whole state (event `state`) and goes on with every message
    /// accepted afterwards; nothing is lost between the two, as both are taken under one lock.
    public func subscribe() -> AsyncStream<Message> {
        let (stream, continuation) = AsyncStream.makeStream(of: Message.self, bufferingPolicy: .bufferingNewest(Self.streamBufferLimit))
        let id = contents.withLock { contents in
            let id = contents.nextStream
            contents.nextStream += 1
            contents.streams[id] = continuation
            continuation.yield(Message(event: "state", json: Self.stateJSON(origin: origin, contents)))
            return id
        }
        continuation.onTermination = { [weak self] _ in
            self?.contents.withLock { _ = $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    // MARK: Helpers

    private static func stateJSON(origin: String, _ contents: Contents) -> String {
        let nodeStages = contents.stagesByNode.sorted { $0.key < $1.key }
            .map { "\(JSONText.string($0.key).serialized):\(JSONText.array($0.value.sorted().map(JSONText.string)).serialized)" }
        return "{\"origin\":\(JSONText.string(origin).serialized)"
            + ",\"graph\":\(contents.graph ?? "null")"
            + ",\"snapshots\":[\(contents.snapshots.joined(separator: ","))]"
            + ",\"events\":[\(contents.events.joined(separator: ","))]"
            + ",\"dead_letters\":[\(contents.deadLetters.joined(separator: ","))]"
            + ",\"node_stages\":{\(nodeStages.joined(separator: ","))}}"
    }

    private static func append(_ element: String, to list: inout [String], limit: Int) {
        list.append(element)
        if list.count > limit { list.removeFirst(list.count - limit) }
    }

    /// The string fields of an event's JSON object (the few the state keeps track of).
    private static func fields(of json: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        return object.compactMapValues { $0 as? String }
    }
}
