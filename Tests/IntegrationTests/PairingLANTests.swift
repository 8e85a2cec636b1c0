// Pairing across simulated hosts: `lancompute pair` beside a keyed broker on h1, new workers with
// empty key directories on h2 and h3; a wrong code and a reused one get nothing and write nothing.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
struct PairingLANTests {
    /// A keyed broker, then `pair` on h1. A worker on h3 with a wrong code fails and nothing is
    /// written; a worker on h2 with `mode` (--discover or --broker) and the right code pairs, serves
    /// the whole run, and the head's authorized_keys lists it; a third worker reusing the code is refused.
    private func pairServeAndRefuse(discover: Bool) throws {
        let lan = try LANHosts(count: 3)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let head = harness.path("head")
        let made = try ProcessHarness.run(["keygen", head])
        try #require(made.status == 0, "\(made.standardError)")
        let authorized = harness.path("head/authorized_keys")
        try "# paired workers land below\n".write(toFile: authorized, atomically: true, encoding: .utf8)
        let count = 200
        try """
            version: 1
            name: paired
            source:
              generate: {count: \(count), size: 8}
            stages:
              - name: shout
                builtin: upper
            sink:
              file: \(harness.path("out.txt"))
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: harness.path("paired.yaml"), atomically: true, encoding: .utf8)
        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", harness.path("paired.yaml"), "--keys", head, "--bind", "tcp://0.0.0.0:5555",
            "--aggregator", "tcp://0.0.0.0:5557", "--events", "tcp://0.0.0.0:5556", "--json",
        ]))
        #expect(broker.waitForErrorContaining("broker announced", timeout: .seconds(20)), "\(harness.transcripts)")
        let pair = try harness.start("pair", LANHosts.ip, lan.command(on: 1, [CLI.path, "pair", "--keys", head, "--ttl", "2m"]))
        #expect(pair.wait(until: { pair.standardOutput.contains("pairing code: ") }, timeout: .seconds(20)), "\(harness.transcripts)")
        let code = try #require(pair.standardOutput.split(separator: "\n").first { $0.hasPrefix("pairing code: ") }?.split(separator: " ").last
            .map(String.init), "\(harness.transcripts)")
        #expect(code.count == 7 && code.dropFirst(3).first == "-", "\(code)")
        let before = try String(contentsOfFile: authorized, encoding: .utf8)

        /// A worker on `host` with its own empty key directory; `code` given with --pair.
        func worker(_ name: String, host: Int, code: String, discover: Bool = discover) throws -> (ChildProcess, home: String) {
            let home = harness.path("\(name)-home")
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            let target = discover ? ["--discover", "--discover-timeout", "10"] : ["--broker", "tcp://\(lan.address(1)):5555"]
            let child = try harness.start(name, LANHosts.ip, lan.command(on: host, [
                "/usr/bin/env", "HOME=\(home)", "LANCOMPUTE_HOME=\(home)/.lancompute", CLI.path, "worker", "--pair", code] + target))
            return (child, home)
        }

        // A wrong code: one line, exit 1, nothing written on either side, no item served.
        let digits = code.filter(\.isNumber)
        let wrongDigits = String(digits.prefix(5)) + String((Int(String(digits.last!))! + 1) % 10)
        let (wrong, wrongHome) = try worker("wrong", host: 3, code: wrongDigits)
        #expect(wrong.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
        #expect(wrong.standardError.contains("error LC2076: the head did not prove the code"), "\(harness.transcripts)")
        #expect(wrong.standardError.split(separator: "\n").filter { $0.contains("error") }.count == 1, "\(harness.transcripts)")
        #expect(try String(contentsOfFile: authorized, encoding: .utf8) == before)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: "\(wrongHome)/.lancompute")) ?? [] == [], "\(harness.transcripts)")
        #expect(pair.wait(until: { pair.standardError.contains("failed: wrong code (2 tries left)") }, timeout: .seconds(10)),
                "\(harness.transcripts)")
        #expect(pair.isRunning)
        #expect(RunCommandTests.lines(harness.path("out.txt")).isEmpty)

        // The right code: the worker pairs, stores the broker's key, and serves the run.
        let (right, rightHome) = try worker("right", host: 2, code: code)
        #expect(pair.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        #expect(pair.standardOutput.contains("paired: authorized "), "\(harness.transcripts)")
        #expect(broker.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("out.txt")).count == count, "\(harness.transcripts)")
        #expect(right.standardError.contains("paired with "), "\(harness.transcripts)")
        let brokerKey = try String(contentsOfFile: "\(head)/public.key", encoding: .utf8)
        #expect(try String(contentsOfFile: "\(rightHome)/.lancompute/broker.key", encoding: .utf8) == brokerKey)
        let workerKey = try String(contentsOfFile: "\(rightHome)/.lancompute/public.key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let after = try String(contentsOfFile: authorized, encoding: .utf8)
        #expect(after.hasPrefix(before))
        let added = after.dropFirst(before.count).split(separator: "\n")
        #expect(added.count == 1 && added[0].hasPrefix(workerKey + " ") && added[0].hasSuffix(" worker"), "\(after)")
        let name = try #require(added.first?.split(separator: " ").dropFirst().first.map(String.init))

        // The code is spent: a third machine that types it is refused, and nothing changes. (The
        // broker finished its run and stopped announcing, so this one names the head.)
        let (reuse, reuseHome) = try worker("reuse", host: 3, code: code, discover: false)
        #expect(reuse.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
        #expect(reuse.standardError.contains("error LC2078: no pairing service answered"), "\(harness.transcripts)")
        #expect(try String(contentsOfFile: authorized, encoding: .utf8) == after)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: "\(reuseHome)/.lancompute")) ?? [] == [], "\(harness.transcripts)")

        // `keys list` shows the paired key; `keys revoke NAME` removes it.
        let list = try ProcessHarness.run(["keys", "list", "--keys", head])
        #expect(list.status == 0 && list.standardOutput.contains(name) && list.standardOutput.contains(workerKey), "\(list.standardOutput)")
        let revoke = try ProcessHarness.run(["keys", "revoke", name, "--keys", head])
        #expect(revoke.status == 0, "\(revoke.standardError)")
        #expect(try String(contentsOfFile: authorized, encoding: .utf8) == before)
    }

    /// After pairing, a plain `worker --broker` (no --pair, no --broker-key) uses the stored broker key.
    @Test func aPairedMachineNeedsNoKeyOptionsLater() throws {
        let lan = try LANHosts(count: 2)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let head = harness.path("head")
        for run in 1...2 {
            try """
                version: 1
                name: again\(run)
                source:
                  generate: {count: 50, size: 8}
                stages:
                  - name: same
                    builtin: identity
                sink:
                  file: \(harness.path("out\(run).txt"))
                  format: lines
                """.write(toFile: harness.path("again\(run).yaml"), atomically: true, encoding: .utf8)
        }
        // `pair` first, on a head with no keys yet: it makes them, and the broker uses the same directory.
        let pair = try harness.start("pair", LANHosts.ip, lan.command(on: 1, [CLI.path, "pair", "--keys", head]))
        #expect(pair.wait(until: { pair.standardOutput.contains("pairing code: ") }, timeout: .seconds(20)), "\(harness.transcripts)")
        let code = String(try #require(pair.standardOutput.split(separator: " ").last).trimmingCharacters(in: .whitespacesAndNewlines))
        func broker(_ run: Int) throws -> ChildProcess {
            try harness.start("broker\(run)", LANHosts.ip, lan.command(on: 1, [
                CLI.path, "broker", harness.path("again\(run).yaml"), "--keys", head, "--bind", "tcp://0.0.0.0:5555",
                "--aggregator", "tcp://0.0.0.0:5557", "--events", "none",
            ]))
        }
        let home = harness.path("home/.lancompute")
        func worker(_ name: String, _ extra: [String]) throws -> ChildProcess {
            try harness.start(name, LANHosts.ip, lan.command(on: 2, [
                "/usr/bin/env", "LANCOMPUTE_HOME=\(home)", CLI.path, "worker", "--broker", "tcp://\(lan.address(1)):5555"] + extra))
        }
        let first = try broker(1)
        let paired = try worker("paired", ["--pair", code])
        #expect(first.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(pair.wait(timeout: .seconds(10)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("out1.txt")).count == 50, "\(harness.transcripts)")
        paired.signal(SIGTERM)
        #expect(paired.wait(timeout: .seconds(30)) != nil, "\(harness.transcripts)")

        let second = try broker(2)
        let later = try worker("later", [])
        #expect(second.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("out2.txt")).count == 50, "\(harness.transcripts)")
        #expect(!later.standardError.contains("LC20"), "\(harness.transcripts)")
    }

    @Test func aWorkerPairsByDiscoveryAndServesWhileWrongAndReusedCodesGetNothing() throws {
        try pairServeAndRefuse(discover: true)
    }

    @Test func aWorkerPairsWithANamedBrokerAndServes() throws {
        try pairServeAndRefuse(discover: false)
    }
}
