// Checks EventFeed: topics, sequence numbers, the last-value cache and never blocking on slow subscribers.

import Foundation
import Testing
import ZeroMQ
@testable import LANCompute

@Suite(.serialized, .timeLimit(.minutes(2))) struct EventFeedTests {
    static func receive(_ socket: Socket, timeout: Duration = .seconds(5)) throws -> (topic: String, object: [String: Any])? {
        guard try socket.poll(.in, timeout: timeout).contains(.in), let frames = try socket.tryReceiveMultipart(),
              frames.count == 2, let object = jsonObject(String(decoding: frames[1], as: UTF8.self)) else { return nil }
        return (String(decoding: frames[0], as: UTF8.self), object)
    }

    @Test func aSubscriberReceivesEventsAndSnapshotsWithPerTopicSequences() throws {
        let (feed, endpoint) = try FeedHarness.makeFeed()
        let subscriber = try Socket(.sub)
        try subscriber.subscribe("")
        try subscriber.connect(endpoint)
        try #require(try feed.awaitSubscriptions(1))

        let metrics = PipelineMetrics(pipeline: "wordcount", stageNames: ["split"])
        feed.publish(.brokerStarted(pipeline: "wordcount", endpoints: ["dispatch": "tcp://127.0.0.1:5555"]))
        feed.publish(.nodeJoined(id: "n1", host: "alpha", capabilities: ["arch": "arm64"]))
        feed.publish(metrics.snapshot())
        feed.publish(.nodeJoined(id: "n2", host: "beta", capabilities: [:]))
        feed.publish(metrics.snapshot())

        var received: [(topic: String, object: [String: Any])] = []
        for _ in 0..<5 {
            received.append(try #require(try Self.receive(subscriber)))
        }
        #expect(received.map(\.topic) == ["event.broker.started", "event.node.joined", "metrics", "event.node.joined", "metrics"])
        let sequences = received.map { ($0.object["seq"] as? NSNumber)?.intValue ?? -1 }
        #expect(sequences == [1, 1, 1, 2, 2])
        #expect(received.allSatisfy { $0.object["type"] as? String == $0.topic })
        #expect(received.allSatisfy { ($0.object["ts"] as? NSNumber)?.doubleValue ?? 0 > 1_700_000_000 })
        #expect(received[1].object["host"] as? String == "alpha")
        #expect(received[1].object["capabilities"] as? [String: String] == ["arch": "arm64"])
        #expect((received[0].object["endpoints"] as? [String: String])?["dispatch"] == "tcp://127.0.0.1:5555")
        #expect(feed.sequence == 5)
        #expect(feed.lastSnapshot?.seq == 2)
        #expect(feed.droppedMessages == 0)
    }

    @Test func everyEventKindHasItsTopicAndFields() throws {
        let date = Date(timeIntervalSince1970: 1_800_000_000.5)
        let cases: [(ClusterEvent, String, [String: String])] = [
            (.brokerStopping(reason: "finished", summary: ["items": 3]), "event.broker.stopping", ["reason": "finished"]),
            (.nodeLeft(id: "n1", reason: "expired"), "event.node.left", ["id": "n1", "reason": "expired", "detail": ""]),
            (.workerReady(id: "w1", node: "n1", stage: "s", credit: 4), "event.worker.ready", ["stage": "s", "credit": "4"]),
            (.workerExpired(id: "w1", inFlight: 2), "event.worker.expired", ["in_flight": "2"]),
            (.itemRetried(stage: "s", itemID: "i9", attempt: 2, reason: "timeout"), "event.item.retried", ["item_id": "i9"]),
            (.itemDeadLettered(stage: "s", itemID: "i9", attempts: 3, reason: "error"), "event.item.dead-lettered",
             ["attempts": "3"]),
            (.stageBackpressure(stage: "s", queued: 100, limit: 100, active: true), "event.stage.backpressure",
             ["active": "1", "limit": "100"]),
            (.protocolError(peer: "0a1b", reason: "duplicate READY"), "event.protocol.error", ["peer": "0a1b"]),
            (.messagesDropped(socket: "aggregator", dropped: 12), "event.feed.dropped", ["dropped": "12"]),
            (.pipelineFinished(pipeline: "p", items: 10, deadLettered: 1, durationMs: 1500), "event.pipeline.finished",
             ["duration_ms": "1500"]),
            (.breakerOpened(worker: "0a1b", node: "n1", stage: "s", failures: 5, window: 7, cooldownMs: 30000), "event.breaker.opened",
             ["worker": "0a1b", "node": "n1", "stage": "s", "failures": "5", "window": "7", "cooldown_ms": "30000"]),
            (.breakerProbing(worker: "0a1b", node: "n1", stage: "s"), "event.breaker.probing", ["node": "n1", "stage": "s"]),
            (.breakerClosed(worker: "", node: "n1", stage: "s"), "event.breaker.closed", ["worker": "", "stage": "s"]),
        ]
        for (event, topic, fields) in cases {
            #expect(event.topic == topic)
            let object = try #require(jsonObject(event.json(seq: 3, at: date)), "\(topic) is not a JSON object")
            #expect(object["type"] as? String == topic)
            #expect((object["seq"] as? NSNumber)?.intValue == 3)
            #expect((object["ts"] as? NSNumber)?.doubleValue == 1_800_000_000.5)
            for (key, value) in fields {
                #expect(object[key].map { "\($0)" } == value, "\(topic).\(key)")
            }
        }
        // Keys are written in a fixed order: type, seq, ts, then the event's fields.
        #expect(ClusterEvent.nodeLeft(id: "n1", reason: "disconnect", detail: "bye").json(seq: 1, at: date)
            == #"{"type":"event.node.left","seq":1,"ts":1800000000.5,"id":"n1","reason":"disconnect","detail":"bye"}"#)
    }

    @Test func aLateSubscriberGetsTheCachedSnapshotAtOnce() throws {
        let (feed, endpoint) = try FeedHarness.makeFeed()
        let early = try Socket(.sub)
        try early.subscribe("")
        try early.connect(endpoint)
        try #require(try feed.awaitSubscriptions(1))
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        metrics.itemCompleted(stage: "a", latency: .milliseconds(1))
        feed.publish(metrics.snapshot())
        feed.publish(.nodeLeft(id: "n1", reason: "disconnect"))
        #expect(try Self.receive(early)?.topic == "metrics")
        #expect(try Self.receive(early)?.topic == "event.node.left")

        // A subscriber to events only is not sent the snapshot.
        let eventsOnly = try Socket(.sub)
        try eventsOnly.subscribe("event.")
        try eventsOnly.connect(endpoint)
        try #require(try feed.awaitSubscriptions(2))
        #expect(try Self.receive(early, timeout: .milliseconds(200)) == nil)
        #expect(try Self.receive(eventsOnly, timeout: .milliseconds(200)) == nil)

        // One interval is a second by default; the cached snapshot must arrive well within it.
        let late = try Socket(.sub)
        try late.subscribe("metrics")
        let clock = ContinuousClock()
        let started = clock.now
        try late.connect(endpoint)
        var replay: (topic: String, object: [String: Any])?
        while replay == nil && clock.now - started < .seconds(1) {
            if try feed.socket.poll(.in, timeout: .milliseconds(5)).contains(.in) { feed.handleSubscriptions() }
            replay = try Self.receive(late, timeout: .milliseconds(5))
        }
        let message = try #require(replay, "no snapshot within one interval")
        #expect(message.topic == "metrics")
        // The replay keeps its original seq, so no subscriber sees a false gap.
        #expect((message.object["seq"] as? NSNumber)?.intValue == 1)
        let stages = message.object["stages"] as? [[String: Any]]
        #expect((stages?.first?["completed"] as? NSNumber)?.intValue == 1)
        // The early subscriber matched too and sees the same seq again: a replay, not news.
        #expect((try Self.receive(early)?.object["seq"] as? NSNumber)?.intValue == 1)
    }

    @Test func aPythonSubscriberCountsMatchTheRun() throws {
        let script = """
            import json, sys, time, zmq
            socket = zmq.Context().socket(zmq.SUB)
            socket.setsockopt(zmq.SUBSCRIBE, b"")
            socket.setsockopt(zmq.RCVTIMEO, 500)
            socket.connect(sys.argv[1])
            counts, last, gaps, duplicates, last_metrics = {}, {}, 0, 0, None
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    topic, body = socket.recv_multipart()
                except zmq.Again:
                    continue
                topic, message = topic.decode(), json.loads(body)
                seq = message["seq"]
                if topic in last and seq == last[topic]:
                    duplicates += 1
                    continue
                if topic in last:
                    gaps += seq - last[topic] - 1
                last[topic] = seq
                counts[topic] = counts.get(topic, 0) + 1
                if topic == "metrics":
                    last_metrics = message
                if topic == "event.broker.stopping":
                    break
            print(json.dumps({"counts": counts, "gaps": gaps, "duplicates": duplicates, "last_metrics": last_metrics}))
            """
        let (feed, endpoint) = try FeedHarness.makeFeed()
        let peer = try PythonPeer(script: script, arguments: [endpoint])
        defer { peer.terminate() }
        try #require(try feed.awaitSubscriptions(1, timeout: .seconds(20)),
                     "the Python subscriber never subscribed: \(peer.errorOutput)")

        // A small run: 120 items through two stages, every 40th item dead-lettered in the second.
        let items = 120
        let metrics = PipelineMetrics(pipeline: "wordcount", stageNames: ["split", "count"])
        var published: [String: Int] = [:]
        func publish(_ event: ClusterEvent) {
            feed.publish(event)
            published[event.topic, default: 0] += 1
        }
        func publishSnapshot() {
            feed.publish(metrics.snapshot())
            published["metrics", default: 0] += 1
        }
        publish(.brokerStarted(pipeline: "wordcount", endpoints: ["events": endpoint]))
        publish(.nodeJoined(id: "n1", host: "alpha", capabilities: [:]))
        publish(.nodeJoined(id: "n2", host: "beta", capabilities: ["gpu": "metal"]))
        var deadLettered = 0
        for item in 1...items {
            metrics.itemReceived(stage: "split")
            metrics.itemCompleted(stage: "split", latency: .microseconds(200 + item))
            metrics.itemReceived(stage: "count")
            if item.isMultiple(of: 40) {
                metrics.itemFailed(stage: "count")
                metrics.itemRetried(stage: "count")
                metrics.itemFailed(stage: "count")
                metrics.itemDeadLettered(stage: "count")
                deadLettered += 1
                publish(.itemDeadLettered(stage: "count", itemID: "item-\(item)", attempts: 2, reason: "error reply"))
            } else {
                metrics.itemCompleted(stage: "count", latency: .milliseconds(1 + item % 7))
            }
            if item.isMultiple(of: 10) {
                metrics.setQueued(stage: "count", items - item)
                publishSnapshot()
                try feed.serviceSubscriptions(for: .milliseconds(5))
            }
        }
        metrics.setQueued(stage: "count", 0)
        publishSnapshot()
        publish(.pipelineFinished(pipeline: "wordcount", items: items, deadLettered: deadLettered, durationMs: 100))
        publish(.brokerStopping(reason: "finished", summary: ["items": items]))

        #expect(peer.waitForExit(timeout: .seconds(20)), "the Python subscriber did not finish")
        let report = try #require(jsonObject(peer.output.split(separator: "\n").last ?? ""), "no report: \(peer.errorOutput)")
        let counts = try #require(report["counts"] as? [String: Int])
        #expect(counts == published)
        #expect(report["gaps"] as? Int == 0)
        let lastMetrics = try #require(report["last_metrics"] as? [String: Any])
        let stages = try #require(lastMetrics["stages"] as? [[String: Any]])
        #expect(stages.map { $0["name"] as? String } == ["split", "count"])
        #expect(stages.map { $0["completed"] as? Int } == [items, items - deadLettered])
        #expect(stages.map { $0["received"] as? Int } == [items, items])
        #expect(stages.map { $0["dead_lettered"] as? Int } == [0, deadLettered])
        #expect(stages.map { $0["queued"] as? Int } == [0, 0])
        #expect(lastMetrics["seq"] as? Int == published["metrics"])
    }

    @Test func aLatePythonSubscriberGetsTheSnapshotWithinOneInterval() throws {
        let script = """
            import json, sys, time, zmq
            socket = zmq.Context().socket(zmq.SUB)
            socket.setsockopt(zmq.SUBSCRIBE, b"metrics")
            socket.setsockopt(zmq.RCVTIMEO, 5000)
            started = time.monotonic()
            socket.connect(sys.argv[1])
            topic, body = socket.recv_multipart()
            print(json.dumps({"elapsed": time.monotonic() - started, "topic": topic.decode(), "seq": json.loads(body)["seq"]}))
            """
        let (feed, endpoint) = try FeedHarness.makeFeed()
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        feed.publish(metrics.snapshot())
        feed.publish(metrics.snapshot())  // nobody listens yet: both go nowhere; the second is cached

        let peer = try PythonPeer(script: script, arguments: [endpoint])
        defer { peer.terminate() }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while peer.process.isRunning && clock.now < deadline {
            try feed.serviceSubscriptions(for: .milliseconds(20))
        }
        let report = try #require(jsonObject(peer.output.split(separator: "\n").last ?? ""), "no report: \(peer.errorOutput)")
        #expect(report["topic"] as? String == "metrics")
        #expect(report["seq"] as? Int == 2)
        let elapsed = try #require(report["elapsed"] as? Double)
        #expect(elapsed < 1.0, "the cached snapshot took \(elapsed) s")
    }

    @Test func aStuckSubscriberNeverBlocksPublishing() throws {
        let total = 200_000
        func publishAll(_ feed: EventFeed, count: Int) -> Duration {
            let clock = ContinuousClock()
            let started = clock.now
            for index in 0..<count {
                feed.publish(.itemRetried(stage: "s", itemID: "item-\(index)", attempt: 1, reason: "load"))
            }
            return clock.now - started
        }

        // Baseline: the same feed work with nobody subscribed.
        let (idleFeed, _) = try FeedHarness.makeFeed()
        let baseline = publishAll(idleFeed, count: total / 4) * 4

        let (feed, endpoint) = try FeedHarness.makeFeed()
        let stuck = try FeedSubscriber(endpoint: endpoint, receiveHighWaterMark: 1)
        defer { stuck.close() }
        try #require(try feed.awaitSubscriptions(1))
        let elapsed = publishAll(feed, count: total)
        // Generous: other suites share the CPU; a blocking publish would never finish at all.
        #expect(elapsed < baseline * 4 + .seconds(3), "stuck: \(elapsed), baseline: \(baseline)")
        #expect(feed.sequence == UInt64(total))

        // The subscriber finally reads what reached it; a last message reveals every drop as a gap.
        var received = 0
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while received < total, clock.now < deadline, try stuck.next(timeout: .milliseconds(500)) != nil {
            received += 1
        }
        feed.publish(.itemRetried(stage: "s", itemID: "last", attempt: 1, reason: "load"))
        let last = try #require(try stuck.next(timeout: .seconds(5)))
        received += 1
        #expect(last.seq == UInt64(total + 1))
        #expect(stuck.missedMessages > 0, "a stuck subscriber should have lost messages at the HWM")
        #expect(UInt64(received) + stuck.missedMessages == UInt64(total + 1))
    }

    @Test func aFailedSendIsCountedAndNeverThrows() throws {
        let (feed, _) = try FeedHarness.makeFeed()
        feed.socket.close()
        feed.publish(.nodeLeft(id: "n1", reason: "gone"))
        feed.publish(PipelineMetrics(pipeline: "p", stageNames: []).snapshot())
        feed.handleSubscriptions()
        #expect(feed.droppedMessages == 2)
        #expect(feed.sequence == 2)
    }

    @Test func thePythonExampleInTheDocsWorks() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/metrics.md")
        let document = try String(contentsOf: url, encoding: .utf8)
        let section = try #require(document.components(separatedBy: "## Reading the feed from Python").dropFirst().first)
        let script = try #require(section.components(separatedBy: "```python\n").dropFirst().first?
            .components(separatedBy: "```").first)
        #expect(script.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }.count <= 15)

        let (feed, endpoint) = try FeedHarness.makeFeed()
        let peer = try PythonPeer(script: script, arguments: [endpoint])
        defer { peer.terminate() }
        try #require(try feed.awaitSubscriptions(1, timeout: .seconds(20)), "no subscription: \(peer.errorOutput)")
        feed.publish(.nodeJoined(id: "n1", host: "alpha", capabilities: [:]))
        feed.publish(PipelineMetrics(pipeline: "p", stageNames: ["a"]).snapshot())
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while peer.output.split(separator: "\n").count < 2 && clock.now < deadline {
            try feed.serviceSubscriptions(for: .milliseconds(20))
        }
        let lines = peer.output.split(separator: "\n")
        #expect(lines.count == 2, "\(peer.output) \(peer.errorOutput)")
        #expect(lines.first?.hasPrefix("event.node.joined {") == true)
        #expect(lines.last?.hasPrefix("metrics {") == true)
    }
}
