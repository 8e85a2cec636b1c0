// Checks TopView: sparklines, the table, plain lines, ANSI framing and event summaries.

import Foundation
import Testing
@testable import LANCompute

@Suite struct TopViewTests {
    static func snapshot(seq: UInt64, rate: Double, completed: Int = 100) -> MetricsSnapshot {
        MetricsSnapshot(
            seq: seq, ts: 1_800_000_000, pipeline: "thumbs",
            stages: [
                .init(name: "resize", received: 120, completed: completed, deadLettered: 2, queued: 7, inFlight: 3,
                      rate: rate, latencyMs: .init(p50: 10, p90: 20, p99: 42.34, max: 80)),
                .init(name: "upload", rate: 0),
            ],
            nodes: [NodeMetrics(id: "mini-1", host: "mac-mini.local", workers: 4, inFlight: 3, completed: 97, heartbeatAgeMs: 120)])
    }

    static func message(_ snapshot: MetricsSnapshot, gap: UInt64 = 0) -> FeedMessage {
        FeedMessage(topic: "metrics", json: String(decoding: snapshot.jsonData(), as: UTF8.self), seq: snapshot.seq ?? 0, gap: gap)
    }

    @Test func sparklinesScaleToTheLargestValue() {
        #expect(TopView.sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█")
        #expect(TopView.sparkline([3, 3]) == "██")
        #expect(TopView.sparkline([0, 0, 0]) == "▁▁▁")
        #expect(TopView.sparkline([]) == "")
    }

    @Test func historyKeepsTheLastRatesAndIgnoresReplays() {
        var view = TopView(historyLength: 3)
        for seq in 1...5 { view.record(Self.snapshot(seq: UInt64(seq), rate: Double(seq))) }
        view.record(Self.snapshot(seq: 5, rate: 99))
        #expect(view.rateHistory["resize"] == [3, 4, 5])
        #expect(view.rateHistory["upload"] == [0, 0, 0])
    }

    @Test func theTableShowsStagesAndNodes() throws {
        var view = TopView(historyLength: 4)
        view.record(Self.snapshot(seq: 1, rate: 2))
        view.record(Self.message(Self.snapshot(seq: 3, rate: 8), gap: 1))
        let lines = view.render()
        #expect(lines[0].hasPrefix("lancompute top  pipeline thumbs  2027-01-15T08:00:00Z  seq 3  missed 1"))
        let stageHeader = try #require(lines.firstIndex { $0.hasPrefix("STAGE") })
        #expect(lines[stageHeader].split(separator: " ", omittingEmptySubsequences: true)
            == ["STAGE", "RATE/s", "TREND", "QUEUED", "IN-FLIGHT", "P99", "ms", "COMPLETED", "DEAD"])
        let resize = lines[stageHeader + 1].split(separator: " ", omittingEmptySubsequences: true)
        #expect(resize == ["resize", "8.0", "▃█", "7", "3", "42.3", "100", "2"])
        let node = try #require(lines.first { $0.hasPrefix("mini-1") })
        #expect(node.split(separator: " ", omittingEmptySubsequences: true)
            == ["mini-1", "mac-mini.local", "4", "3", "97", "120", "ms"])
    }

    @Test func columnsStayAlignedWithLongNames() throws {
        var snapshot = Self.snapshot(seq: 1, rate: 1)
        snapshot.stages[0].name = "a-stage-name-much-longer-than-its-column"
        var view = TopView()
        view.record(snapshot)
        let lines = view.render()
        let header = try #require(lines.first { $0.hasPrefix("STAGE") })
        let row = try #require(lines.first { $0.hasPrefix("a-stage") })
        #expect(row.contains("…"))
        // The rate column ends where its header does.
        let headerEnd = try #require(header.range(of: "RATE/s")).upperBound
        let offset = header.distance(from: header.startIndex, to: headerEnd)
        #expect(row.prefix(offset).hasSuffix("1.0"))
    }

    @Test func beforeTheFirstSnapshotItSaysItIsWaiting() {
        let lines = TopView().render(now: Date(timeIntervalSince1970: 0))
        #expect(lines == ["lancompute top  1970-01-01T00:00:00Z  waiting for the first snapshot..."])
        #expect(TopView().plainLines().isEmpty)
    }

    @Test func theANSIFrameRedrawsInPlace() {
        var view = TopView()
        view.record(Self.snapshot(seq: 1, rate: 1))
        let frame = view.ansiFrame()
        #expect(frame.hasPrefix("\u{1B}[H"))
        #expect(frame.hasSuffix("\u{1B}[K\n\u{1B}[J"))
        #expect(frame.components(separatedBy: "\u{1B}[K\n").count - 1 == view.render().count)
    }

    @Test func plainLinesAreTimestampedKeyValuePairs() {
        var view = TopView()
        view.record(Self.snapshot(seq: 1, rate: 12.5))
        #expect(view.plainLines() == [
            "2027-01-15T08:00:00Z stage=resize rate=12.5 queued=7 in_flight=3 p99_ms=42.3 completed=100 dead_lettered=2",
            "2027-01-15T08:00:00Z stage=upload rate=0.0 queued=0 in_flight=0 p99_ms=0.0 completed=0 dead_lettered=0",
            "2027-01-15T08:00:00Z node=mini-1 host=mac-mini.local workers=4 in_flight=3 completed=97 heartbeat_age_ms=120",
        ])
    }

    @Test func eventsAreSummarisedAndTheLastFewKept() {
        var view = TopView(eventLimit: 2)
        for index in 1...3 {
            let event = ClusterEvent.nodeLeft(id: "n\(index)", reason: "expired", detail: "silent")
            let json = event.json(seq: UInt64(index), at: Date(timeIntervalSince1970: 1_800_000_000))
            let message = FeedMessage(topic: event.topic, json: json, seq: UInt64(index), gap: 0)
            #expect(view.record(message) == false)
        }
        #expect(view.recentEvents == [
            "2027-01-15T08:00:00Z event.node.left detail=silent id=n2 reason=expired",
            "2027-01-15T08:00:00Z event.node.left detail=silent id=n3 reason=expired",
        ])
        view.record(Self.snapshot(seq: 1, rate: 1))
        let lines = view.render()
        #expect(lines.suffix(3) == ["RECENT EVENTS"] + view.recentEvents)
    }

    @Test func nestedEventFieldsAreShownAsJSON() {
        let event = ClusterEvent.nodeJoined(id: "n1", host: "alpha", capabilities: ["gpu": "metal"])
        let json = event.json(seq: 1, at: Date(timeIntervalSince1970: 0))
        let summary = TopView.eventSummary(FeedMessage(topic: event.topic, json: json, seq: 1, gap: 0))
        #expect(summary == #"1970-01-01T00:00:00Z event.node.joined capabilities={"gpu":"metal"} host=alpha id=n1"#)
    }

    @Test func anUnservedStageIsMarkedInTheTableAndThePlainLines() throws {
        var snapshot = Self.snapshot(seq: 1, rate: 0)
        snapshot.stages[1].unserved = true
        snapshot.stages[1].queued = 9
        var view = TopView()
        // Through the feed's JSON, as `top` receives it.
        view.record(Self.message(snapshot))
        let lines = view.render()
        let upload = try #require(lines.first { $0.contains("upload") })
        #expect(upload.hasPrefix("!upload") && upload.hasSuffix("UNSERVED"))
        #expect(!(lines.first { $0.hasPrefix("resize") } ?? "").contains("UNSERVED"))
        #expect(lines.contains("! unserved: upload: items wait and no live worker serves them (see 'lancompute nodes')"))
        #expect(view.plainLines().contains { $0.contains("stage=upload") && $0.hasSuffix("unserved=true") })
        #expect(!view.plainLines().contains { $0.contains("stage=resize") && $0.contains("unserved") })
    }
}

