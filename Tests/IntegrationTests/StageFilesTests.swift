// Stage files travel with the topology, unserved stages are loud, and `worker --stages` checks its names: the built binary, real sockets.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3)))
struct StageFilesTests {
    static let shout = """
        import sys
        for line in sys.stdin:
            sys.stdout.write(line.upper())
            sys.stdout.flush()
        """

    /// A topology in `directory/pipeline` whose stage runs `scripts/shout.py` beside it, over `count` lines.
    static func writePipeline(in harness: ProcessHarness, count: Int, extra: String = "") throws -> (topology: String, input: [String]) {
        let directory = harness.path("pipeline")
        try FileManager.default.createDirectory(atPath: directory + "/scripts", withIntermediateDirectories: true)
        try shout.write(toFile: directory + "/scripts/shout.py", atomically: true, encoding: .utf8)
        let input = (1...count).map { "line \($0)" }
        try (input.joined(separator: "\n") + "\n").write(toFile: directory + "/input.txt", atomically: true, encoding: .utf8)
        try """
            version: 1
            name: shipped
            source:
              file: input.txt
            stages:
              - name: shout
                exec:
                  command: [python3, -u, scripts/shout.py]
            \(extra)
            sink:
              file: out.txt
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: directory + "/shipped.yaml", atomically: true, encoding: .utf8)
        return (directory + "/shipped.yaml", input)
    }

    @Test(.enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
    func aWorkerInAnEmptyDirectoryOnAnotherHostServesAnExecStageWithTheShippedScript() throws {
        let lan = try LANHosts(count: 2)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (topology, input) = try Self.writePipeline(in: harness, count: 50)
        let empty = harness.path("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)

        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", topology, "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "tcp://0.0.0.0:5556", "--insecure", "--no-announce", "--json",
        ]))
        #expect(broker.waitForErrorContaining("listening on", timeout: .seconds(20)), "\(harness.transcripts)")
        #expect(broker.standardError.contains("stage shout ships scripts/shout.py"), "\(harness.transcripts)")
        // Started in an empty directory of its own, with nothing but lancompute and python3.
        let worker = try harness.start("worker", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "worker", "--broker", "tcp://\(lan.address(1)):5555", "--insecure", "--cache", harness.path("cache"),
        ]), directory: empty)
        #expect(broker.wait(timeout: .seconds(90)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("pipeline/out.txt")).sorted() == input.map { $0.uppercased() }.sorted(),
                "\(harness.transcripts)")
        #expect(worker.standardError.contains("fetched stage file scripts/shout.py"), "\(harness.transcripts)")
        let digest = try #require(try FileManager.default.contentsOfDirectory(atPath: harness.path("cache")).first)
        #expect(digest.count == 64, "the cache is keyed by SHA-256")
        #expect(try String(contentsOfFile: harness.path("cache/\(digest)/shout.py"), encoding: .utf8) == Self.shout)
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty, "the worker's own directory stays empty")
    }

    @Test func aStageNoWorkerCanServeIsLoggedAndPublishedWithTheReasonAndItsItemsWaitForOneThatCan() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (topology, input) = try Self.writePipeline(in: harness, count: 20, extra: "    requires:\n      labels: {gpu: \"yes\"}")
        let dispatch = harness.ipc("dispatch")
        let events = try harness.watchEvents(harness.ipc("events"))
        let broker = try harness.lancompute("broker", [
            "broker", topology, "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", harness.ipc("events"), "--json",
        ])
        #expect(try harness.waitUntilServing(dispatch))
        let plain = try harness.lancompute("worker-plain", ["worker", "--broker", dispatch], directory: harness.path("pipeline"))

        let start = ContinuousClock.now
        #expect(events.wait(until: { !events.events("event.stage.unserved").isEmpty }, timeout: .seconds(10)), "\(harness.transcripts)")
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(8), "the stage should be reported within seconds, took \(elapsed)")
        let event = try #require(events.events("event.stage.unserved").first)
        #expect(event["stage"] as? String == "shout")
        #expect(event["waiting"] as? Int ?? 0 > 0)
        let reasons = event["reasons"] as? [[String: Any]] ?? []
        #expect(reasons.count == 1 && (reasons.first?["reason"] as? String ?? "").contains("gpu"), "\(event)")
        #expect(broker.waitForErrorContaining("stage shout is unserved", timeout: .seconds(5)), "\(harness.transcripts)")
        #expect(plain.standardError.contains("not serving stage shout"), "\(harness.transcripts)")

        let nodes = try harness.lancompute("nodes", ["nodes", dispatch])
        #expect(nodes.wait(timeout: .seconds(20)) == 0, "\(harness.transcripts)")
        #expect(nodes.standardOutput.contains("UNSERVED stage shout"), "\(nodes.transcript)")

        try FileManager.default.createDirectory(atPath: harness.path("empty-gpu"), withIntermediateDirectories: true)
        try harness.lancompute("worker-gpu", ["worker", "--broker", dispatch, "--label", "gpu=yes"], directory: harness.path("empty-gpu"))
        #expect(broker.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("pipeline/out.txt")).sorted() == input.map { $0.uppercased() }.sorted(),
                "every item waited and was delivered: \(harness.transcripts)")
        #expect(events.wait(until: { !events.events("event.stage.served").isEmpty }, timeout: .seconds(5)), "\(harness.transcripts)")
        let logged = broker.standardError.components(separatedBy: "stage shout is unserved").count - 1
        #expect(logged == 1, "logged once, not \(logged) times")
    }

    @Test func workerStagesWithAnUnknownNameExitsWithOneLine() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (topology, _) = try Self.writePipeline(in: harness, count: 1)
        let dispatch = harness.ipc("dispatch")
        try harness.lancompute("broker", ["broker", topology, "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", "none"])
        #expect(try harness.waitUntilServing(dispatch))
        let worker = try harness.lancompute("worker", ["worker", "--broker", dispatch, "--stages", "shout,nosuch"])
        #expect(worker.wait(timeout: .seconds(20)) == 1, "\(harness.transcripts)")
        let lines = worker.standardError.split(separator: "\n")
        #expect(lines.count == 1, "\(worker.transcript)")
        #expect(lines.first?.hasPrefix("lancompute: error LC2090: --stages names 'nosuch'") == true, "\(worker.transcript)")
        #expect(lines.first?.contains("its stages are shout") == true, "\(worker.transcript)")
    }

    @Test func doctorSaysWhichStagesOfTheBrokersTopologyThisMachineCouldServeAndWhyNot() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let (topology, _) = try Self.writePipeline(in: harness, count: 1, extra: """
              - name: tagged
                builtin: identity
                from: [shout]
                requires:
                  labels: {zone: lab}
            """)
        let dispatch = harness.ipc("dispatch")
        try harness.lancompute("broker", ["broker", topology, "--bind", dispatch, "--aggregator", harness.ipc("aggregator"), "--events", "none"])
        #expect(try harness.waitUntilServing(dispatch))
        let doctor = try harness.lancompute("doctor", ["doctor", "--broker", dispatch, "--cache", harness.path("doctor-cache")])
        #expect(doctor.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        let output = doctor.standardOutput
        #expect(output.contains("broker      \(dispatch): answers, pipeline shipped, 2 stage(s)"), "\(output)")
        #expect(output.contains("shout     can serve here"), "the shipped script counts: \(output)")
        #expect(output.contains("tagged    cannot serve here: needs label zone=lab"), "\(output)")

        let missing = try harness.lancompute("doctor-missing", ["doctor", "--broker", harness.ipc("nobody"), "--timeout", "1"])
        #expect(missing.wait(timeout: .seconds(20)) == 1, "\(harness.transcripts)")
        #expect(missing.standardError.hasPrefix("lancompute: error LC2091: the broker at \(harness.ipc("nobody")) did not answer"), "\(missing.transcript)")
    }
}
