// A LANCompute worker and a plain MDP/0.1 worker in Python serve one pipeline together.

import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct MixedWorkersTests {
    @Test func plainMDPWorkerServesAStageBesideALANComputeWorker() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let input = try String(contentsOf: ProcessHarness.packageRoot.appendingPathComponent("Topologies/data/mixed.txt"), encoding: .utf8)
        let lines = input.split(separator: "\n").map(String.init)
        #expect(lines.count >= 8)

        let broker = try harness.lancompute("broker", [
            "broker", "Topologies/mixed-workers.yaml", "--bind", harness.ipc("dispatch"),
            "--aggregator", harness.ipc("aggregator"), "--events", "none",
            "--output", harness.path("out.txt"), "--json",
        ])
        try #require(try harness.waitUntilServing(harness.ipc("dispatch")), "\(harness.transcripts)")
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
        let input = try String(contentsOf: ProcessHarness.packageRoot.appendingPathComponent("Topologies/data/mixed.txt"), encoding: .utf8)
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
        // A broker that never answers: the worker registers, hears nothing, and registers again from
        // a new socket; it must still stop at once when told.
        let silent = try Socket(.router)
        defer { silent.close() }
        try silent.set(.linger, .zero)
        try silent.bind(harness.ipc("silent"))
        let worker = try harness.python("mdp-worker", [
            "Topologies/workers/mdp_worker.py", "--broker", harness.ipc("silent"), "--service", "reverse",
            "--heartbeat-interval", "100", "--reconnect", "100",
        ])
        var registrations = Set<[UInt8]>()
        let deadline = ContinuousClock.now + .seconds(10)
        while registrations.count < 2 && ContinuousClock.now < deadline {
            guard try silent.poll(.in, timeout: .milliseconds(100)).contains(.in) else { continue }
            let frames = try silent.receiveMultipart()
            // [routing id, "", "MDPW01", 0x01 READY, service, ...]
            if frames.count >= 5, frames[2] == Array("MDPW01".utf8), frames[3] == [0x01] { registrations.insert(frames[0]) }
        }
        #expect(registrations.count >= 2, "the worker did not register again after hearing nothing: \(worker.transcript)")
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
