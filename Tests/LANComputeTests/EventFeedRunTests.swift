// A real run watched through its events feed: the counts a subscriber sees match what the run did.

import Foundation
import Testing
@testable import LANCompute

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(2))) struct EventFeedRunTests {
    /// A loopback port that was free a moment ago.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test func subscriberSeesSnapshotsAndEventsThatMatchTheRun() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lancompute-feed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let events = "tcp://127.0.0.1:\(Self.freePort())"
        let subscriber = try FeedSubscriber(endpoint: events)
        defer { subscriber.close() }

        var topology = Topology(
            name: "watched", source: SourceSpec(kind: .generate(count: 400, size: 8)),
            stages: [
                StageSpec(name: "nap", handler: .builtin(name: "sleep", options: ["duration": "2ms"]), replicas: 2),
                StageSpec(name: "grumpy", handler: .builtin(name: "grep", options: ["pattern": "^item-1[0-9]-"]), from: ["nap"]),
            ],
            sink: SinkSpec(kind: .file(path: directory.appendingPathComponent("out.txt").path)))
        topology.broker.bind = "tcp://127.0.0.1:*"
        topology.broker.aggregator = "tcp://127.0.0.1:*"
        let configuration = BrokerConfiguration(topology: topology, eventsEndpoint: events, metricsInterval: .milliseconds(100))
        let cluster = try LocalCluster(configuration: configuration, workers: 2, logger: .quiet)
        let result = ResultBox()
        let thread = Thread {
            result.set(Result { try cluster.run() })
        }
        thread.start()

        var snapshots: [MetricsSnapshot] = []
        var topics: [String: Int] = [:]
        var finished: [String: Any]?
        let deadline = ContinuousClock.now + .seconds(60)
        while finished == nil && ContinuousClock.now < deadline {
            guard let message = try subscriber.next(timeout: .milliseconds(200)) else { continue }
            #expect(message.gap == 0, "the feed skipped \(message.gap) messages before \(message.topic) \(message.seq)")
            topics[message.topic, default: 0] += 1
            if message.topic == "metrics" { snapshots.append(try message.snapshot()) }
            if message.topic == "event.broker.stopping" {
                finished = try JSONSerialization.jsonObject(with: Data(message.json.utf8)) as? [String: Any]
            }
        }
        let summary = try #require(result.wait(timeout: .seconds(60))).get()
        #expect(summary.itemsIn == 400)
        let last = try #require(snapshots.last)
        #expect(last.stages.first { $0.name == "nap" }?.completed == 400)
        #expect(last.stages.first { $0.name == "grumpy" }?.completed == 400)
        #expect(last.stages.first { $0.name == "grumpy" }?.received == 400)
        #expect(snapshots.count >= 2, "expected several snapshots during the run")
        // A subscriber that connects as the broker starts may miss the first events (PUB/SUB's slow
        // joiner); the end of the run it always sees.
        #expect(topics["event.pipeline.finished"] == 1)
        #expect(last.nodes.count == 2 || snapshots.contains { $0.nodes.count == 2 })
        let counts = try #require(finished?["summary"] as? [String: Int])
        #expect(counts["items_in"] == 400)
        #expect(counts["items_out"] == summary.itemsOut)
    }

    @Test func retriesAndDeadLettersArePublishedWithTheirReasons() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lancompute-feed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let events = "tcp://127.0.0.1:\(Self.freePort())"
        let subscriber = try FeedSubscriber(endpoint: events)
        defer { subscriber.close() }
        var topology = Topology(
            name: "failing", source: SourceSpec(kind: .generate(count: 5, size: 8)),
            stages: [
                // A slow first stage: the subscriber's subscription is in place before the first failure.
                StageSpec(name: "nap", handler: .builtin(name: "sleep", options: ["duration": "300ms"])),
                StageSpec(name: "nope", handler: .builtin(name: "fail", options: [:]), from: ["nap"], maxAttempts: 2),
            ],
            sink: SinkSpec(kind: .file(path: directory.appendingPathComponent("out.txt").path)))
        topology.broker.bind = "tcp://127.0.0.1:*"
        topology.broker.aggregator = "tcp://127.0.0.1:*"
        let configuration = BrokerConfiguration(
            topology: topology, eventsEndpoint: events, deadLetterPath: directory.appendingPathComponent("dead.jsonl").path,
            metricsInterval: .milliseconds(100))
        let cluster = try LocalCluster(configuration: configuration, workers: 1, logger: .quiet)
        let result = ResultBox()
        let thread = Thread { result.set(Result { try cluster.run() }) }
        thread.start()
        var retried: [[String: Any]] = []
        var deadLettered = 0
        var finished = false
        let deadline = ContinuousClock.now + .seconds(60)
        while !finished && ContinuousClock.now < deadline {
            guard let message = try subscriber.next(timeout: .milliseconds(200)) else { continue }
            let object = try JSONSerialization.jsonObject(with: Data(message.json.utf8)) as? [String: Any]
            if message.topic == "event.item.retried", let object { retried.append(object) }
            if message.topic == "event.item.dead-lettered" { deadLettered += 1 }
            if message.topic == "event.broker.stopping" { finished = true }
        }
        let summary = try #require(result.wait(timeout: .seconds(60))).get()
        #expect(summary.deadLettered == 5)
        #expect(retried.count == 5, "one retry per item before its second and last attempt")
        #expect(retried.allSatisfy { $0["reason"] as? String == "failed" && $0["attempt"] as? Int == 2 })
        #expect(deadLettered == 5)
    }
}

/// Hands a run's result from its thread to the test.
final class ResultBox: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while holding `condition`.
    private let condition = NSCondition()
    private var value: Result<RunSummary, any Error>?

    func set(_ result: Result<RunSummary, any Error>) {
        condition.lock()
        value = result
        condition.broadcast()
        condition.unlock()
    }

    func wait(timeout: Duration) -> Result<RunSummary, any Error>? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        while value == nil && condition.wait(until: deadline) {}
        return value
    }
}
