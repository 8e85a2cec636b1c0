// Runs whole pipelines in one process: broker, aggregator and workers over real sockets on loopback.

import Foundation
import Testing
@testable import LANCompute

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
                                   workerTemplate: WorkerConfiguration(brokerEndpoint: "", swiftFunctions: functions))
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
