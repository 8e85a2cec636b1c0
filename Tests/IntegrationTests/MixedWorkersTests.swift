// A LANCompute worker and a plain MDP/0.1 worker in Python serve one pipeline together.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct MixedWorkersTests {
    @Test func plainMDPWorkerServesAStageBesideALANComputeWorker() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let input = try String(contentsOf: CommandRunner.packageRoot.appendingPathComponent("Topologies/data/mixed.txt"), encoding: .utf8)
        let lines = input.split(separator: "\n").map(String.init)
        #expect(lines.count >= 8)

        let broker = try harness.lancompute("broker", [
            "broker", "Topologies/mixed-workers.yaml", "--bind", harness.ipc("dispatch"),
            "--aggregator", harness.ipc("aggregator"), "--events", "none",
            "--output", harness.path("out.txt"), "--json",
        ])
        #expect(broker.waitForError(containing: "broker ready", timeout: .seconds(20)), "\(harness.transcripts)")
        try harness.lancompute("worker", ["worker", "--broker", harness.ipc("dispatch"), "--stages", "upper"])
        try harness.python("mdp-worker", [
            "Topologies/workers/mdp_worker.py", "--broker", harness.ipc("dispatch"), "--service", "reverse",
        ])

        let status = broker.wait(timeout: .seconds(60))
        #expect(status == 0, "\(harness.transcripts)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        let expected = lines.map { String($0.uppercased().reversed()) }
        #expect(sink.split(separator: "\n").map(String.init).sorted() == expected.sorted(), "\(harness.transcripts)")
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsIn == lines.count)
        #expect(summary.itemsOut == lines.count)
        #expect(summary.protocolErrors == 0)
    }

    @Test func swiftFunctionWorkerFromTheExampleServesAStage() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let input = try String(contentsOf: CommandRunner.packageRoot.appendingPathComponent("Topologies/data/mixed.txt"), encoding: .utf8)
        let lines = input.split(separator: "\n").map(String.init)
        let broker = try harness.lancompute("broker", [
            "broker", "Topologies/mixed-workers.yaml", "--bind", harness.ipc("dispatch"),
            "--aggregator", harness.ipc("aggregator"), "--events", "none",
            "--output", harness.path("out.txt"), "--json",
        ])
        let example = URL(fileURLWithPath: CLI.path).deletingLastPathComponent().appendingPathComponent("swift-worker-example").path
        _ = try harness.start("swift-worker", example, [harness.ipc("dispatch")])
        #expect(broker.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(sink.split(separator: "\n").map(String.init).sorted() == lines.map { String($0.uppercased().reversed()) }.sorted(),
                "\(harness.transcripts)")
    }

    @Test func workersOutliveTheirBrokerAndServeTheNextRun() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let dispatch = harness.ipc("dispatch")
        try harness.lancompute("worker", ["worker", "--broker", dispatch, "--stages", "upper"])
        try harness.python("mdp-worker", [
            "Topologies/workers/mdp_worker.py", "--broker", dispatch, "--service", "reverse", "--reconnect", "200",
        ])
        // Two runs, one after the other, on the same endpoints: the workers see DISCONNECT at the end
        // of the first and must register again with the second broker.
        for run in 1...2 {
            let broker = try harness.lancompute("broker-\(run)", [
                "broker", "Topologies/mixed-workers.yaml", "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
                "--events", "none", "--output", harness.path("out-\(run).txt"), "--json",
            ])
            #expect(broker.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
            let sink = (try? String(contentsOfFile: harness.path("out-\(run).txt"), encoding: .utf8)) ?? ""
            #expect(sink.split(separator: "\n").count == 8, "run \(run): \(harness.transcripts)")
        }
    }

    @Test func plainMDPWorkerExitsCleanlyOnSIGTERM() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        // No broker at all: the worker keeps trying to register and must still stop at once when told.
        let worker = try harness.python("mdp-worker", [
            "Topologies/workers/mdp_worker.py", "--broker", harness.ipc("nobody"), "--service", "reverse",
            "--heartbeat-interval", "100", "--reconnect", "100", "--verbose",
        ])
        #expect(worker.waitForError(containing: "registered", timeout: .seconds(10)), "\(worker.transcript)")
        #expect(worker.waitForError(containing: "reconnecting", timeout: .seconds(10)), "\(worker.transcript)")
        worker.signal(SIGTERM)
        #expect(worker.wait(timeout: .seconds(5)) == 0, "\(worker.transcript)")
    }
}

/// The fields of the broker's `--json` summary the tests look at.
struct Summary: Decodable {
    var itemsIn: Int
    var itemsOut: Int
    var deadLettered: Int
    var protocolErrors: Int
    var unfinished: Int

    init(json: String) throws {
        guard let line = json.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw HarnessError("no JSON summary in: \(json)")
        }
        self = try JSONDecoder().decode(Summary.self, from: Data(line.utf8))
    }
}
