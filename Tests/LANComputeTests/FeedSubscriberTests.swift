// Checks FeedSubscriber: parsing, per-topic gap detection, replays, restarts and foreign messages.

import Foundation
import Testing
import ZeroMQ
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct FeedSubscriberTests {
    /// A raw XPUB that sends hand-made messages, and a subscriber connected to it.
    final class Rig {
        let publisher: Socket
        let subscriber: FeedSubscriber

        init(topicPrefix: String = "") throws {
            publisher = try Socket(.xpub)
            try publisher.bind("tcp://127.0.0.1:*")
            subscriber = try FeedSubscriber(endpoint: try publisher.lastEndpoint, topicPrefix: topicPrefix)
            // Wait for the subscription, so that nothing sent afterwards is lost to a slow join.
            guard try publisher.poll(.in, timeout: .seconds(10)).contains(.in) else {
                throw ZMQError(code: .again, operation: "waiting for the subscription")
            }
            _ = try publisher.tryReceiveMultipart()
        }

        func send(_ topic: String, seq: UInt64?) throws {
            let json = seq.map { #"{"type":"\#(topic)","seq":\#($0),"ts":1}"# } ?? #"{"type":"\#(topic)"}"#
            try publisher.send(multipart: [Array(topic.utf8), Array(json.utf8)])
        }

        func next() throws -> FeedMessage? {
            try subscriber.next(timeout: .seconds(5))
        }
    }

    @Test func consecutiveSequencesHaveNoGap() throws {
        let rig = try Rig()
        for seq in 1...3 { try rig.send("metrics", seq: UInt64(seq)) }
        for seq in 1...3 {
            let message = try #require(try rig.next())
            #expect(message.topic == "metrics")
            #expect(message.seq == UInt64(seq))
            #expect(message.gap == 0)
        }
        #expect(rig.subscriber.missedMessages == 0)
    }

    @Test func aJumpInSequenceIsReportedAsAGap() throws {
        let rig = try Rig()
        for seq: UInt64 in [1, 2, 5, 6, 10] { try rig.send("metrics", seq: seq) }
        var gaps: [UInt64] = []
        for _ in 0..<5 { gaps.append(try #require(try rig.next()).gap) }
        #expect(gaps == [0, 0, 2, 0, 3])
        #expect(rig.subscriber.missedMessages == 5)
    }

    @Test func gapsAreCountedPerTopic() throws {
        let rig = try Rig()
        try rig.send("event.node.joined", seq: 1)
        try rig.send("metrics", seq: 40)  // first seen on this topic: nothing known to be missing
        try rig.send("event.node.joined", seq: 2)
        try rig.send("metrics", seq: 41)
        try rig.send("event.node.left", seq: 1)
        var messages: [FeedMessage] = []
        for _ in 0..<5 { messages.append(try #require(try rig.next())) }
        #expect(messages.map(\.gap) == [0, 0, 0, 0, 0])
        #expect(messages.map(\.seq) == [1, 40, 2, 41, 1])
    }

    @Test func aReplayedSnapshotIsSkipped() throws {
        let rig = try Rig()
        try rig.send("metrics", seq: 5)
        try rig.send("metrics", seq: 5)
        try rig.send("metrics", seq: 6)
        #expect(try rig.next()?.seq == 5)
        let next = try #require(try rig.next())
        #expect(next.seq == 6)
        #expect(next.gap == 0)
        #expect(rig.subscriber.duplicatesSkipped == 1)
    }

    @Test func aLowerSequenceMeansThePublisherRestarted() throws {
        let rig = try Rig()
        try rig.send("metrics", seq: 9)
        try rig.send("metrics", seq: 1)
        try rig.send("metrics", seq: 2)
        #expect(try rig.next()?.seq == 9)
        let restarted = try #require(try rig.next())
        #expect(restarted.seq == 1)
        #expect(restarted.gap == 0)
        #expect(try rig.next()?.gap == 0)
    }

    @Test func messagesWithoutSequenceArePassedOn() throws {
        let rig = try Rig()
        try rig.send("event.custom", seq: nil)
        try rig.publisher.send(multipart: [Array("lonely".utf8)])
        let unsequenced = try #require(try rig.next())
        #expect(unsequenced.topic == "event.custom")
        #expect(unsequenced.seq == 0)
        let lonely = try #require(try rig.next())
        #expect(lonely.topic == "lonely")
        #expect(lonely.json == "")
        #expect(rig.subscriber.unsequencedMessages == 2)
    }

    @Test func theTopicPrefixFilters() throws {
        let rig = try Rig(topicPrefix: "event.node.")
        try rig.send("metrics", seq: 1)
        try rig.send("event.item.retried", seq: 1)
        try rig.send("event.node.left", seq: 1)
        #expect(try rig.next()?.topic == "event.node.left")
    }

    @Test func nextReturnsNilAfterItsTimeout() throws {
        let rig = try Rig()
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try rig.subscriber.next(timeout: .milliseconds(100)) == nil)
        let elapsed = clock.now - started
        #expect(elapsed >= .milliseconds(100) && elapsed < .seconds(5))
    }

    @Test func itReadsWhatAnEventFeedPublishes() throws {
        let (feed, endpoint) = try FeedHarness.makeFeed()
        let subscriber = try FeedSubscriber(endpoint: endpoint)
        try #require(try feed.awaitSubscriptions(1))
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        metrics.itemReceived(stage: "a")
        feed.publish(metrics.snapshot())
        feed.publish(.workerExpired(id: "w1", inFlight: 2))
        let snapshotMessage = try #require(try subscriber.next(timeout: .seconds(5)))
        let snapshot = try snapshotMessage.snapshot()
        #expect(snapshot.seq == 1)
        #expect(snapshot.stages.first?.received == 1)
        let event = try #require(try subscriber.next(timeout: .seconds(5)))
        #expect(event.topic == "event.worker.expired")
        #expect(jsonObject(event.json)?["in_flight"] as? Int == 2)
    }

    @Test func theEventsLinePutsTheTopicFirst() throws {
        let message = FeedMessage(topic: "event.node.left", json: #"{"type":"event.node.left","seq":3}"#, seq: 3, gap: 0)
        #expect(message.jsonLineWithTopic == #"{"topic":"event.node.left","type":"event.node.left","seq":3}"#)
        let empty = FeedMessage(topic: "t", json: " { } ", seq: 0, gap: 0).jsonLineWithTopic
        #expect(jsonObject(empty)?.keys.sorted() == ["topic"])
        let wrapped = FeedMessage(topic: "odd", json: "not \"json\"", seq: 0, gap: 0).jsonLineWithTopic
        #expect(jsonObject(wrapped)?["payload"] as? String == "not \"json\"")
        #expect(jsonObject(wrapped)?["topic"] as? String == "odd")
    }
}
