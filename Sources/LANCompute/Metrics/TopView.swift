// What `lancompute top` shows: the state kept between snapshots and its rendering, free of I/O.

import Foundation

/// The live view of a feed: the latest snapshot, each stage's recent rates and the last events.
/// Rendering is pure (no terminal calls), so it is tested on strings.
public struct TopView: Sendable {
    /// Eight heights of a sparkline, lowest first.
    public static let sparkBlocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    public let historyLength: Int
    public let eventLimit: Int
    public private(set) var latest: MetricsSnapshot?
    /// Each stage's last ``historyLength`` rates, oldest first.
    public private(set) var rateHistory: [String: [Double]] = [:]
    /// Recent events as one-line summaries, oldest first.
    public private(set) var recentEvents: [String] = []
    /// Messages the feed reported missing.
    public private(set) var missedMessages: UInt64 = 0

    public init(historyLength: Int = 20, eventLimit: Int = 5) {
        self.historyLength = max(1, historyLength)
        self.eventLimit = max(0, eventLimit)
    }

    /// Takes in one feed message; returns true when it was a snapshot (the view should be redrawn).
    @discardableResult
    public mutating func record(_ message: FeedMessage) -> Bool {
        missedMessages += message.gap
        if message.topic == EventFeed.metricsTopic, let snapshot = try? message.snapshot() {
            record(snapshot)
            return true
        }
        recentEvents.append(Self.eventSummary(message))
        if recentEvents.count > eventLimit { recentEvents.removeFirst(recentEvents.count - eventLimit) }
        return false
    }

    public mutating func record(_ snapshot: MetricsSnapshot) {
        // A replayed snapshot (same seq) adds nothing to the history.
        if let latest, let seq = snapshot.seq, latest.seq == seq { return }
        latest = snapshot
        for stage in snapshot.stages {
            var history = rateHistory[stage.name, default: []]
            history.append(stage.rate)
            if history.count > historyLength { history.removeFirst(history.count - historyLength) }
            rateHistory[stage.name] = history
        }
    }

    // MARK: Rendering

    /// A bar per value, scaled to the largest (zero is the lowest bar).
    public static func sparkline(_ values: [Double]) -> String {
        let peak = values.max() ?? 0
        return String(values.map { value -> Character in
            guard peak > 0, value > 0 else { return sparkBlocks[0] }
            let level = Int((value / peak * Double(sparkBlocks.count - 1)).rounded())
            return sparkBlocks[min(max(level, 0), sparkBlocks.count - 1)]
        })
    }

    /// The view as table lines, for a terminal.
    public func render(now: Date = Date()) -> [String] {
        var lines: [String] = []
        guard let snapshot = latest else {
            lines.append("lancompute top  \(Self.timestamp(now))  waiting for the first snapshot...")
            return lines
        }
        var header = "lancompute top  pipeline \(snapshot.pipeline)  \(Self.timestamp(Date(timeIntervalSince1970: snapshot.ts)))"
        if let seq = snapshot.seq { header += "  seq \(seq)" }
        if missedMessages > 0 { header += "  missed \(missedMessages)" }
        lines.append(header)
        lines.append("")
        let trendWidth = -(max(historyLength, 5) + 2)
        lines.append(Self.row([
            ("STAGE", -16), ("RATE/s", 9), ("  TREND", trendWidth), ("QUEUED", 8), ("IN-FLIGHT", 10),
            ("P99 ms", 9), ("COMPLETED", 11), ("DEAD", 7),
        ]))
        for stage in snapshot.stages {
            let trend = Self.sparkline(rateHistory[stage.name] ?? [])
            lines.append(Self.row([
                (stage.unserved ? "!" + stage.name : stage.name, -16), (Self.decimal(stage.rate), 9), ("  " + trend, trendWidth),
                (String(stage.queued), 8), (String(stage.inFlight), 10), (Self.decimal(stage.latencyMs.p99), 9),
                (String(stage.completed), 11), (String(stage.deadLettered), 7),
                (stage.unserved ? "UNSERVED" : "", -8),
            ]))
        }
        let unserved = snapshot.stages.filter(\.unserved).map(\.name)
        if !unserved.isEmpty {
            lines.append("! unserved: \(unserved.joined(separator: ", ")): items wait and no live worker serves them (see 'lancompute nodes')")
        }
        lines.append("")
        lines.append(Self.row([
            ("NODE", -16), ("HOST", -20), ("WORKERS", 8), ("IN-FLIGHT", 10), ("COMPLETED", 11), ("HEARTBEAT", 11),
        ]))
        if snapshot.nodes.isEmpty { lines.append("(no nodes)") }
        for node in snapshot.nodes {
            lines.append(Self.row([
                (node.id, -16), (node.host, -20), (String(node.workers), 8), (String(node.inFlight), 10),
                (String(node.completed), 11), ("\(node.heartbeatAgeMs) ms", 11),
            ]))
        }
        if !recentEvents.isEmpty {
            lines.append("")
            lines.append("RECENT EVENTS")
            lines.append(contentsOf: recentEvents)
        }
        return lines
    }

    /// The view drawn in place: cursor home, each line cleared to its end, the rest of the screen cleared.
    public func ansiFrame(now: Date = Date()) -> String {
        "\u{1B}[H" + render(now: now).map { $0 + "\u{1B}[K\n" }.joined() + "\u{1B}[J"
    }

    /// The latest snapshot as timestamped `key=value` lines, one per stage and node, for logs and pipes.
    public func plainLines() -> [String] {
        guard let snapshot = latest else { return [] }
        let time = Self.timestamp(Date(timeIntervalSince1970: snapshot.ts))
        var lines = snapshot.stages.map { stage in
            "\(time) stage=\(stage.name) rate=\(Self.decimal(stage.rate)) queued=\(stage.queued) "
                + "in_flight=\(stage.inFlight) p99_ms=\(Self.decimal(stage.latencyMs.p99)) "
                + "completed=\(stage.completed) dead_lettered=\(stage.deadLettered)" + (stage.unserved ? " unserved=true" : "")
        }
        lines += snapshot.nodes.map { node in
            "\(time) node=\(node.id) host=\(node.host) workers=\(node.workers) in_flight=\(node.inFlight) "
                + "completed=\(node.completed) heartbeat_age_ms=\(node.heartbeatAgeMs)"
        }
        return lines
    }

    /// An event as `time topic key=value...` (fields other than type, seq and ts, in key order).
    public static func eventSummary(_ message: FeedMessage) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(message.json.utf8)) as? [String: Any] else {
            return message.topic + " " + message.json
        }
        let time = (object["ts"] as? NSNumber).map { timestamp(Date(timeIntervalSince1970: $0.doubleValue)) } ?? ""
        let fields = object.keys.sorted().filter { !["type", "seq", "ts"].contains($0) }.map { key -> String in
            let value = object[key]!
            if let text = value as? String { return "\(key)=\(text)" }
            if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
                return "\(key)=\(String(decoding: data, as: UTF8.self))"
            }
            return "\(key)=\(value)"
        }
        return ([time, message.topic] + fields).filter { !$0.isEmpty }.joined(separator: " ")
    }

    // MARK: Formatting

    /// Columns padded to their width: negative widths align left, positive right; long text is cut.
    static func row(_ columns: [(String, Int)]) -> String {
        columns.map { text, width in
            let size = abs(width)
            let cut = text.count > size ? String(text.prefix(size - 1)) + "…" : text
            let padding = String(repeating: " ", count: size - cut.count)
            return width < 0 ? cut + padding : padding + cut
        }.joined(separator: " ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }

    static func decimal(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false))
    }
}
