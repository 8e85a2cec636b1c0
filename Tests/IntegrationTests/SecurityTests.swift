// The built binary with keys: who gets in, who is refused and told so, revocation without a restart, and the insecure-bind refusal.

import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking  // http:// URLs for String(contentsOf:)
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(4))) struct SecurityTests {
    /// A broker with keys, a `pull` source (so it runs until stopped) and a file sink, over ipc
    /// (CURVE applies there as on TCP). Keys: the broker's, `worker1` (role worker), `watcher`
    /// (observer), `producer` (producer), and `stranger`, which is in no authorized_keys.
    final class SecureCluster {
        let harness: ProcessHarness
        init() throws {
            harness = try ProcessHarness()
            for name in ["broker", "worker1", "watcher", "producer", "stranger", "other-broker"] {
                let made = try ProcessHarness.run(["keygen", harness.path(name)])
                try #require(made.status == 0, "\(made.standardError)")
            }
            try """
                # the test's keys
                \(try publicKey("worker1")) worker1 worker
                \(try publicKey("watcher")) watcher observer   # reads events only
                \(try publicKey("producer")) intake producer
                """.write(toFile: harness.path("broker/authorized_keys"), atomically: true, encoding: .utf8)
            try """
                version: 1
                name: guarded
                source:
                  pull: \(harness.ipc("source"))
                stages:
                  - name: shout
                    builtin: upper
                sink:
                  file: \(harness.path("out.txt"))
                  format: lines
                """.write(toFile: harness.path("guarded.yaml"), atomically: true, encoding: .utf8)
        }

        func publicKey(_ name: String) throws -> String {
            try String(contentsOfFile: harness.path("\(name)/public.key"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        @discardableResult
        func startBroker(extra: [String] = []) throws -> ChildProcess {
            let broker = try harness.lancompute("broker", [
                "broker", harness.path("guarded.yaml"), "--keys", harness.path("broker"), "--bind", harness.ipc("dispatch"),
                "--aggregator", harness.ipc("aggregator"), "--events", harness.ipc("events"), "--json",
            ] + extra)
            try #require(broker.wait(until: { broker.standardError.contains("broker ready") || !broker.isRunning }, timeout: .seconds(20))
                         && broker.isRunning, "\(harness.transcripts)")
            return broker
        }

        /// `--key NAME/secret.key --broker-key BROKER/public.key`.
        func keys(_ name: String, broker: String = "broker") -> [String] {
            ["--key", harness.path("\(name)/secret.key"), "--broker-key", harness.path("\(broker)/public.key")]
        }

        @discardableResult
        func worker(_ name: String, as key: String?, broker: String = "broker") throws -> ChildProcess {
            try harness.lancompute(name, ["worker", "--broker", harness.ipc("dispatch")] + (key.map { keys($0, broker: broker) } ?? []))
        }

        /// Acknowledged batches to the dispatch endpoint, or `atMostOnce` PUSHes to the pull source.
        func feed(_ lines: [String], as key: String?, atMostOnce: Bool = false) throws -> ChildProcess {
            let file = harness.path("in-\(UUID().uuidString).txt")
            try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let target = atMostOnce ? ["--at-most-once", harness.ipc("source")] : [harness.ipc("dispatch")]
            return try harness.lancompute("feed", ["feed"] + target + [file, "--timeout", "10"] + (key.map { keys($0) } ?? []))
        }

        var sink: [String] {
            ((try? String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        /// The broker's JSON summary, after SIGTERM.
        func stop(_ broker: ChildProcess) throws -> [String: Any] {
            broker.signal(SIGTERM)
            _ = broker.wait(timeout: .seconds(30))
            let line = try #require(broker.standardOutput.split(separator: "\n").last.map(String.init), "\(harness.transcripts)")
            return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test func authorizedWorkerAndProducerFinishARun() throws {
        let cluster = try SecureCluster()
        defer { cluster.harness.shutDown() }
        let broker = try cluster.startBroker()
        try cluster.worker("worker", as: "worker1")
        let lines = (1...300).map { "item \($0)" }
        let feed = try cluster.feed(lines, as: "producer")
        #expect(feed.wait(timeout: .seconds(60)) == 0, "\(cluster.harness.transcripts)")
        #expect(cluster.harness.transcripts.contains("refused") == false, "\(cluster.harness.transcripts)")
        let summary = try cluster.stop(broker)
        #expect(summary["itemsOut"] as? Int == 300, "\(cluster.harness.transcripts)")
        #expect(cluster.sink.sorted() == lines.map { $0.uppercased() }.sorted())
    }

    @Test func unknownKeyAndPlaintextWorkersGetNothingAndAreReported() throws {
        let cluster = try SecureCluster()
        defer { cluster.harness.shutDown() }
        let events = try cluster.harness.lancompute("events", ["events", cluster.harness.ipc("events"), "--topic", "event.auth"]
                                                    + cluster.keys("watcher"))
        let broker = try cluster.startBroker(extra: ["--metrics-http", "127.0.0.1:0"])
        // Both exit at once, non-zero, saying why, instead of retrying forever.
        let stranger = try cluster.worker("stranger", as: "stranger")
        #expect(stranger.wait(timeout: .seconds(20)) == 1, "\(cluster.harness.transcripts)")
        #expect(stranger.standardError.contains("LC2072"), "\(cluster.harness.transcripts)")
        let plaintext = try cluster.worker("plaintext", as: nil)
        #expect(plaintext.wait(timeout: .seconds(20)) == 1, "\(cluster.harness.transcripts)")
        #expect(plaintext.standardError.contains("LC2073"), "\(cluster.harness.transcripts)")

        // Lines fed while only refused workers tried: none of them was processed.
        let feed = try cluster.feed(["a", "b", "c"], as: "producer")
        #expect(feed.wait(timeout: .seconds(30)) == 0, "\(cluster.harness.transcripts)")
        #expect(events.wait(until: { events.events("event.auth.refused").count >= 2 }, timeout: .seconds(10)), "\(cluster.harness.transcripts)")
        let port = try #require(broker.standardError.firstMatch(of: /metrics http:\/\/127\.0\.0\.1:(\d+)\//).map { String($0.1) })
        // With keys, the HTTP server wants the token printed with the dashboard's address.
        let token = try #require(broker.standardError.firstMatch(of: /\?token=([0-9a-f]+)/).map { String($0.1) })
        // The exposition is refreshed with each metrics snapshot (every second).
        var metrics = ""
        let counter = #"lancompute_unauthorized_total{pipeline="guarded",socket="dispatch"}"#
        for _ in 0..<50 where !metrics.contains(counter) {
            Thread.sleep(forTimeInterval: 0.2)
            metrics = (try? String(contentsOf: URL(string: "http://127.0.0.1:\(port)/metrics?token=\(token)")!, encoding: .utf8)) ?? ""
        }
        #expect(metrics.contains(counter), "\(metrics)")
        let summary = try cluster.stop(broker)
        #expect(summary["itemsOut"] as? Int == 0)
        #expect(cluster.sink.isEmpty)
    }

    @Test func anObserverKeyCannotRegisterAsAWorkerNorFeed() throws {
        let cluster = try SecureCluster()
        defer { cluster.harness.shutDown() }
        let broker = try cluster.startBroker()
        let watcher = try cluster.worker("watcher", as: "watcher")
        // The observer's key gets onto the dispatch socket (it may ask mmi.nodes) but not the topology or READY.
        #expect(broker.wait(until: { broker.standardError.contains("mmi.topology refused") }, timeout: .seconds(10)), "\(cluster.harness.transcripts)")
        // Nor may it feed: the pull source lets producer keys in only, and the dispatch socket
        // answers its intake batches with an error.
        let feed = try cluster.feed(["x"], as: "watcher", atMostOnce: true)
        #expect(feed.wait(timeout: .seconds(20)) == 1, "\(cluster.harness.transcripts)")
        #expect(feed.standardError.contains("LC2072"), "\(cluster.harness.transcripts)")
        let acknowledged = try cluster.feed(["y"], as: "watcher")
        #expect(acknowledged.wait(timeout: .seconds(30)) != 0, "\(cluster.harness.transcripts)")
        watcher.signal(SIGTERM)
        _ = watcher.wait(timeout: .seconds(10))
        #expect(!broker.standardError.contains("serves stage"), "\(cluster.harness.transcripts)")
        #expect(cluster.sink.isEmpty)
    }

    @Test func revokingAKeyDropsItsWorkerWithoutARestart() throws {
        let cluster = try SecureCluster()
        defer { cluster.harness.shutDown() }
        let broker = try cluster.startBroker()
        let worker = try cluster.worker("worker", as: "worker1")
        #expect(broker.wait(until: { broker.standardError.contains("serves stage shout") }, timeout: .seconds(20)), "\(cluster.harness.transcripts)")
        let revoke = try ProcessHarness.run(["keys", "revoke", "worker1", "--keys", cluster.harness.path("broker")])
        #expect(revoke.status == 0, "\(revoke.standardError)")
        // The broker notices the file within a second, lets the worker go; its reconnection is refused.
        #expect(worker.wait(timeout: .seconds(20)) == 1, "\(cluster.harness.transcripts)")
        #expect(worker.standardError.contains("LC2072"), "\(cluster.harness.transcripts)")
        #expect(broker.standardError.contains("1 revoked"), "\(cluster.harness.transcripts)")
        #expect(broker.isRunning)
        let missing = try ProcessHarness.run(["keys", "revoke", "worker1", "--keys", cluster.harness.path("broker")])
        #expect(missing.status == 1 && missing.standardError.contains("LC2074"), "\(missing.standardError)")
    }

    @Test func aWorkerRefusesABrokerWithAnotherKey() throws {
        let cluster = try SecureCluster()
        defer { cluster.harness.shutDown() }
        let broker = try cluster.startBroker()
        let worker = try cluster.worker("worker", as: "worker1", broker: "other-broker")
        #expect(worker.wait(timeout: .seconds(20)) == 1, "\(cluster.harness.transcripts)")
        #expect(worker.standardError.contains("LC2073"), "\(cluster.harness.transcripts)")
        #expect(!broker.standardError.contains("serves stage"), "\(cluster.harness.transcripts)")
    }

    @Test func aWorkerWillNotConnectBeyondLoopbackUnauthenticated() throws {
        let result = try ProcessHarness.run(["worker", "--broker", "tcp://192.0.2.1:5555"], timeout: .seconds(30))
        #expect(result.status == 1 && result.standardError.contains("LC2075"), "\(result.standardError)")
    }

    @Test func bindsBeyondLoopbackWithoutKeysAreRefusedHTTPIncluded() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try """
            version: 1
            name: exposed
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: shout
                builtin: upper
            sink:
              file: \(harness.path("out.txt"))
            """.write(toFile: harness.path("exposed.yaml"), atomically: true, encoding: .utf8)
        let local = ["--aggregator", harness.ipc("aggregator"), "--events", "none"]
        for command in ["broker", "run"] {
            let dispatch = try ProcessHarness.run([command, harness.path("exposed.yaml"), "--bind", "tcp://0.0.0.0:*"] + local, timeout: .seconds(30))
            #expect(dispatch.status == 1 && dispatch.standardError.contains("LC2005"), "\(command): \(dispatch.standardError)")
            #expect(dispatch.standardError.contains("--keys DIR") && dispatch.standardError.contains("--insecure"), "\(dispatch.standardError)")
            #expect(dispatch.standardError.split(separator: "\n").count == 1, "\(dispatch.standardError)")
            let http = try ProcessHarness.run([command, harness.path("exposed.yaml"), "--bind", harness.ipc("dispatch-\(command)"),
                                               "--http", "0.0.0.0:0"] + local, timeout: .seconds(30))
            #expect(http.status == 1 && http.standardError.contains("LC2005: --http 0.0.0.0:0 is reachable from the network and wants no token"), "\(command): \(http.standardError)")
        }
    }

    @Test func insecureBrokerWarnsAndPublishesIt() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try """
            version: 1
            name: open
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: shout
                builtin: upper
            sink:
              file: \(harness.path("out.txt"))
            """.write(toFile: harness.path("open.yaml"), atomically: true, encoding: .utf8)
        let events = try harness.lancompute("events", ["events", harness.ipc("events"), "--topic", "event.broker.insecure"])
        let broker = try harness.lancompute("broker", ["broker", harness.path("open.yaml"), "--bind", "tcp://0.0.0.0:*",
                                                       "--aggregator", harness.ipc("aggregator"), "--events", harness.ipc("events"), "--insecure"])
        #expect(broker.wait(until: { broker.standardError.contains("--insecure:") }, timeout: .seconds(20)), "\(harness.transcripts)")
        // Published at start, to each new subscriber, and every minute.
        #expect(events.wait(until: { !events.events("event.broker.insecure").isEmpty }, timeout: .seconds(20)), "\(harness.transcripts)")
        let event = try #require(events.events("event.broker.insecure").first)
        #expect((event["endpoints"] as? [String])?.contains { $0.hasPrefix("tcp://0.0.0.0:") } == true, "\(event)")
    }

    @Test func keygenWritesThePairWithItsModesAndKeepsAnExistingOne() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let made = try ProcessHarness.run(["keygen", harness.path("k")])
        try #require(made.status == 0, "\(made.standardError)")
        var info = stat()
        #expect(stat(harness.path("k/secret.key"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(harness.path("k/public.key"), &info) == 0 && info.st_mode & 0o777 == 0o644)
        let printed = made.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(printed.count == 40)
        #expect(try String(contentsOfFile: harness.path("k/public.key"), encoding: .utf8).contains(printed))
        let again = try ProcessHarness.run(["keygen", harness.path("k")])
        #expect(again.status == 1 && again.standardError.contains("LC2070") && again.standardError.contains("--force"), "\(again.standardError)")
        #expect(try String(contentsOfFile: harness.path("k/public.key"), encoding: .utf8).contains(printed))
        let forced = try ProcessHarness.run(["keygen", harness.path("k"), "--force"])
        #expect(forced.status == 0 && !forced.standardOutput.contains(printed))
    }

    @Test func aMalformedAuthorizedKeysLineNamesFileAndLine() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        _ = try ProcessHarness.run(["keygen", harness.path("b")])
        let key = try String(contentsOfFile: harness.path("b/public.key"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try "# ok\n\(key) head worker\nnot-a-key gpu\n".write(toFile: harness.path("b/authorized_keys"), atomically: true, encoding: .utf8)
        try "version: 1\nname: p\nsource:\n  pull: \(harness.ipc("s"))\nstages:\n  - name: a\n    builtin: upper\nsink:\n  stdout: true\n"
            .write(toFile: harness.path("p.yaml"), atomically: true, encoding: .utf8)
        let result = try ProcessHarness.run(["broker", harness.path("p.yaml"), "--keys", harness.path("b"), "--bind", harness.ipc("d"),
                                             "--aggregator", harness.ipc("a"), "--events", "none"], timeout: .seconds(30))
        #expect(result.status == 1, "\(result.standardError)")
        #expect(result.standardError.contains("LC2071: \(harness.path("b/authorized_keys")):3: 'not-a-key' is not a 40-character Z85 public key"), "\(result.standardError)")
        #expect(result.standardError.split(separator: "\n").count == 1, "\(result.standardError)")
    }
}
