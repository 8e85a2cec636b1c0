// Runs whole pipelines in one process: broker, aggregator and workers over real sockets on loopback.

import Foundation
import Testing
@testable import LANCompute
import Logging
import ZeroMQ

@Suite(.timeLimit(.minutes(2))) struct LocalClusterTests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lancompute-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func run(_ topology: Topology, workers: Int = 2, functions: [String: SwiftStageFunction] = [:]) throws -> RunSummary {
        var topology = topology
        topology.broker.bind = "tcp://127.0.0.1:*"
        topology.broker.aggregator = "tcp://127.0.0.1:*"
        topology.broker.heartbeatInterval = .milliseconds(100)
        let cluster = try LocalCluster(configuration: BrokerConfiguration(topology: topology, eventsEndpoint: nil, eventsRequired: false), workers: workers,
                                   workerTemplate: WorkerConfiguration(brokerEndpoint: "", swiftFunctions: functions), logger: .quiet)
        return try cluster.run()
    }

    @Test func twoStagePipelineDeliversEveryItemOnce() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = directory.appendingPathComponent("out.txt").path
        let topology = Topology(
            name: "upper-then-identity", source: SourceSpec(kind: .generate(count: 5000, size: 20)),
            stages: [
                StageSpec(name: "upper", handler: .builtin(name: "upper", options: [:])),
                StageSpec(name: "same", handler: .builtin(name: "identity", options: [:]), from: ["upper"]),
            ],
            sink: SinkSpec(kind: .file(path: sink)))
        let summary = try Self.run(topology)
        #expect(summary.itemsIn == 5000)
        #expect(summary.itemsOut == 5000)
        #expect(summary.deadLettered == 0)
        let lines = try String(contentsOfFile: sink, encoding: .utf8).split(separator: "\n").map(String.init)
        let expected = (0..<5000).map { String(decoding: SourceReader.generated(index: $0, size: 20), as: UTF8.self).uppercased() }
        #expect(lines.sorted() == expected.sorted())
    }

    @Test func failingStageDeadLettersAfterMaxAttempts() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = directory.appendingPathComponent("out.txt").path
        let topology = Topology(
            name: "fails", source: SourceSpec(kind: .generate(count: 20, size: 10)),
            stages: [StageSpec(name: "boom", handler: .builtin(name: "fail", options: [:]), maxAttempts: 2)],
            sink: SinkSpec(kind: .file(path: sink)))
        let summary = try Self.run(topology)
        #expect(summary.deadLettered == 20)
        #expect(summary.itemsOut == 0)
        let deadLetters = try String(contentsOfFile: directory.appendingPathComponent("out.dead-letter.jsonl").path, encoding: .utf8)
        let records = deadLetters.split(separator: "\n")
        #expect(records.count == 20)
        let first = try JSONSerialization.jsonObject(with: Data(records[0].utf8)) as! [String: Any]
        #expect(first["stage"] as? String == "boom")
        #expect(first["attempts"] as? Int == 2)
    }

    @Test func oversizedFramesDropTheirConnectionAndTheRunGoesOn() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = directory.appendingPathComponent("out.txt").path
        var topology = Topology(
            name: "guarded", source: SourceSpec(kind: .pull(endpoint: "tcp://127.0.0.1:*")),
            stages: [StageSpec(name: "nap", handler: .builtin(name: "identity", options: [:]))],
            sink: SinkSpec(kind: .file(path: sink)))
        topology.broker.bind = "tcp://127.0.0.1:*"
        topology.broker.aggregator = "tcp://127.0.0.1:*"
        var configuration = BrokerConfiguration(topology: topology, eventsEndpoint: nil, eventsRequired: false)
        configuration.maxFrameSize = 4096
        let cluster = try LocalCluster(configuration: configuration, workers: 1, logger: .quiet)
        let ready = EndpointBox()
        let result = ResultBox()
        let thread = Thread { result.set(Result { try cluster.run(onReady: { ready.set($0.dispatch) }) }) }
        thread.start()
        let dispatch = try #require(ready.wait(timeout: .seconds(20)))

        func ask(_ body: [UInt8], wait: Duration) throws -> [[UInt8]]? {
            let client = try MDPClient(endpoint: dispatch)
            defer { client.close() }
            return try client.request("nap", body: [body], timeout: wait)
        }
        // A request within the limit is served; one over it never reaches the broker: libzmq drops
        // that connection on the frame's size, before any of it is buffered.
        // (A pull source keeps the run going, so the answered request proves the broker was there.)
        #expect(try ask([UInt8](repeating: 7, count: 1 << 20), wait: .seconds(3)) == nil)
        #expect(try ask(Array("small".utf8), wait: .seconds(10)) == [Array("small".utf8)])

        cluster.stop()
        let summary = try #require(result.wait(timeout: .seconds(60))).get()
        #expect(summary.deadLettered == 0)
        #expect(summary.protocolErrors == 0)
    }

    @Test func swiftFunctionServesExternalStage() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = directory.appendingPathComponent("out.txt").path
        let topology = Topology(
            name: "reverse", source: SourceSpec(kind: .generate(count: 100, size: 12)),
            stages: [StageSpec(name: "reverse", handler: .external)],
            sink: SinkSpec(kind: .file(path: sink)))
        let summary = try Self.run(topology, workers: 1, functions: ["reverse": { item in [Array(item.reversed())] }])
        #expect(summary.itemsOut == 100)
        let lines = try String(contentsOfFile: sink, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.contains(String(String(decoding: SourceReader.generated(index: 7, size: 12), as: UTF8.self).reversed())))
    }
}

/// Hands the endpoint a starting broker bound from its thread to the test.
final class EndpointBox: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while holding `condition`.
    private let condition = NSCondition()
    private var value: String?

    func set(_ endpoint: String) {
        condition.lock()
        value = endpoint
        condition.broadcast()
        condition.unlock()
    }

    func wait(timeout: Duration) -> String? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        while value == nil && condition.wait(until: deadline) {}
        return value
    }
}

extension Logger {
    /// Warnings and errors only: the runs in these tests are expected to be uneventful.
    static var quiet: Logger {
        var logger = Logger(label: "lancompute.test")
        logger.logLevel = .warning
        return logger
    }
}
