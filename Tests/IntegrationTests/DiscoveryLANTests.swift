// Three simulated hosts on a bridge: a worker finds the broker with --discover (DNS-SD through
// per-host avahi-daemons, and the UDP beacon with no daemon) and finds it again when it moves.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: LANHosts.available, "needs Linux, root and iproute2 for network namespaces"))
struct DiscoveryLANTests {
    @Test func workerFindsTheBrokerByBeaconAndFollowsItToAnotherHostAndPort() throws {
        try discoverRunMoveRun(mechanism: "beacon", avahi: false, secondHost: 3)
    }

    @Test(.enabled(if: LANHosts.avahiAvailable, "needs avahi-daemon, dbus-daemon and libdns_sd.so.1"))
    func workerFindsTheBrokerByDNSSDAndFollowsItToAnotherPort() throws {
        try discoverRunMoveRun(mechanism: "dnssd", avahi: true, secondHost: 1)
    }

    /// Broker on h1:5555, worker on h2 with --discover; the run completes. Then a new broker of the
    /// cluster on `secondHost`:6555 (the first one gone): the same worker finds it and completes that run.
    private func discoverRunMoveRun(mechanism: String, avahi: Bool, secondHost: Int) throws {
        let lan = try LANHosts(count: 3)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        if avahi {
            for host in 1...3 { try lan.startAvahi(on: host, harness: harness) }
        }
        let count = 200
        for run in 1...2 {
            try """
                version: 1
                name: found\(run)
                source:
                  generate: {count: \(count), size: 8}
                stages:
                  - name: same
                    builtin: identity
                sink:
                  file: \(harness.path("out\(run).txt"))
                  format: lines
                broker:
                  heartbeat-interval: 200ms
                """.write(toFile: harness.path("run\(run).yaml"), atomically: true, encoding: .utf8)
        }
        // With --discovery set on both sides, the test proves that mechanism and not the other one.
        let forced = avahi ? ["--discovery", "dnssd"] : []
        func broker(_ run: Int, host: Int, port: Int) throws -> ChildProcess {
            try harness.start("broker\(run)", LANHosts.ip, lan.command(on: host, [
                CLI.path, "broker", harness.path("run\(run).yaml"), "--bind", "tcp://0.0.0.0:\(port)",
                "--aggregator", "tcp://0.0.0.0:\(port + 2)", "--events", "tcp://0.0.0.0:\(port + 1)", "--insecure", "--json",
            ] + forced))
        }

        let first = try broker(1, host: 1, port: 5555)
        #expect(first.waitForErrorContaining("broker announced", timeout: .seconds(20)), "\(harness.transcripts)")
        #expect(first.standardError.contains("via \(mechanism)"), "\(harness.transcripts)")
        let worker = try harness.start("worker", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "worker", "--discover", "--insecure"] + forced))
        #expect(first.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("out1.txt")).count == count, "\(harness.transcripts)")
        #expect(worker.standardError.contains("discovered broker tcp://\(lan.address(1)):5555 (cluster default, via \(mechanism))"),
                "\(harness.transcripts)")

        let second = try broker(2, host: secondHost, port: 6555)
        #expect(second.waitForErrorContaining("broker announced", timeout: .seconds(20)), "\(harness.transcripts)")
        #expect(second.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(RunCommandTests.lines(harness.path("out2.txt")).count == count, "\(harness.transcripts)")
        #expect(worker.standardError.contains("discovered broker tcp://\(lan.address(secondHost)):6555"), "\(harness.transcripts)")
        #expect(worker.isRunning, "the worker should outlive both brokers: \(harness.transcripts)")
    }

    @Test func clientsOfAnotherClusterOrWithNoBrokerGiveUpWithLC2050() throws {
        let lan = try LANHosts(count: 2)
        defer { lan.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try """
            version: 1
            name: other
            source:
              pull: tcp://0.0.0.0:5560
            stages:
              - name: same
                builtin: identity
            sink:
              file: \(harness.path("out.txt"))
              format: lines
            """.write(toFile: harness.path("other.yaml"), atomically: true, encoding: .utf8)
        let broker = try harness.start("broker", LANHosts.ip, lan.command(on: 1, [
            CLI.path, "broker", harness.path("other.yaml"), "--bind", "tcp://0.0.0.0:5555", "--aggregator", "tcp://0.0.0.0:5557",
            "--events", "tcp://0.0.0.0:5556", "--insecure", "--cluster", "blue",
        ]))
        #expect(broker.waitForErrorContaining("broker announced: cluster blue via beacon", timeout: .seconds(20)), "\(harness.transcripts)")
        let wrong = try harness.start("events-default", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "events", "--discover", "--discover-timeout", "3", "--count", "1"]))
        #expect(wrong.wait(timeout: .seconds(20)) == 1, "\(harness.transcripts)")
        #expect(wrong.standardError.contains("LC2050"), "\(harness.transcripts)")
        let right = try harness.start("events-blue", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "events", "--discover", "--cluster", "blue", "--count", "1", "--timeout", "10"]))
        #expect(right.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        #expect(right.standardError.contains("discovered broker tcp://\(lan.address(1)):5555 (cluster blue, via beacon)"), "\(harness.transcripts)")

        // feed --discover: the one positional argument is the file; the lines are acknowledged,
        // and a worker of the same cluster takes them to the sink.
        try harness.start("worker", LANHosts.ip, lan.command(on: 2, [CLI.path, "worker", "--discover", "--cluster", "blue", "--insecure"]))
        try "one\ntwo\nthree\n".write(toFile: harness.path("lines.txt"), atomically: true, encoding: .utf8)
        let feed = try harness.start("feed", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "feed", "--discover", "--cluster", "blue", harness.path("lines.txt")]))
        #expect(feed.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        #expect(feed.wait(until: { RunCommandTests.lines(harness.path("out.txt")).count == 3 }, timeout: .seconds(10)),
                "\(harness.transcripts)")

        // A discovering worker that can never serve (a --stages name the pipeline lacks) exits
        // with the same one line as one given --broker, instead of finding the broker again forever.
        let misnamed = try harness.start("misnamed", LANHosts.ip, lan.command(on: 2, [
            CLI.path, "worker", "--discover", "--cluster", "blue", "--stages", "nosuch", "--insecure"]))
        #expect(misnamed.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
        #expect(misnamed.standardError.contains("error LC2090"), "\(misnamed.transcript)")
    }
}
