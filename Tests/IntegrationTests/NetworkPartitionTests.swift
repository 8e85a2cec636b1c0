// Two test hosts in network namespaces joined by a veth pair: a worker on the far host is cut off
// mid-run (a silent partition, which TCP does not report) and nothing is lost or duplicated.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Two namespaces, `head` and `node`, each with one end of a veth pair; removed on `tearDown()`.
final class TwoHosts {
    static let headAddress = "10.231.0.1"
    static let nodeAddress = "10.231.0.2"
    static let ip = "/usr/sbin/ip"

    /// Whether this machine can make the hosts: Linux, root, iproute2.
    static var available: Bool {
        #if os(Linux)
        return geteuid() == 0 && FileManager.default.isExecutableFile(atPath: ip)
        #else
        return false
        #endif
    }

    let head: String
    let node: String
    private let link: String

    init() throws {
        let suffix = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        head = "lc-head-\(suffix)"
        node = "lc-node-\(suffix)"
        link = "lcv\(suffix.prefix(6))"
        do {
            try Self.run(["netns", "add", head])
            try Self.run(["netns", "add", node])
            try Self.run(["link", "add", "\(link)a", "type", "veth", "peer", "name", "\(link)b"])
            try Self.run(["link", "set", "\(link)a", "netns", head])
            try Self.run(["link", "set", "\(link)b", "netns", node])
            try Self.run(["-n", head, "addr", "add", "\(Self.headAddress)/24", "dev", "\(link)a"])
            try Self.run(["-n", node, "addr", "add", "\(Self.nodeAddress)/24", "dev", "\(link)b"])
            for (namespace, device) in [(head, "\(link)a"), (node, "\(link)b")] {
                try Self.run(["-n", namespace, "link", "set", device, "up"])
                try Self.run(["-n", namespace, "link", "set", "lo", "up"])
            }
        } catch {
            tearDown()
            throw error
        }
    }

    /// Cuts the node off without a word: its end of the link goes down, nothing is closed.
    func partitionNode() throws {
        try Self.run(["-n", node, "link", "set", "\(link)b", "down"])
    }

    /// Removing a namespace removes its end of the veth pair, and with it the other end.
    func tearDown() {
        try? Self.run(["netns", "del", node])
        try? Self.run(["netns", "del", head])
    }

    /// The arguments that run `lancompute ARGUMENTS` inside `namespace`.
    func inside(_ namespace: String, _ arguments: [String]) -> [String] {
        ["netns", "exec", namespace, CLI.path] + arguments
    }

    static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let error = Pipe()
        process.standardError = error
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("ip \(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TwoHosts.available, "needs Linux, root and iproute2 for network namespaces"))
struct NetworkPartitionTests {
    @Test func workerCutOffByAPartitionLosesAndDuplicatesNothing() throws {
        let hosts = try TwoHosts()
        defer { hosts.tearDown() }
        let harness = try ProcessHarness()
        defer { harness.shutDown() }

        let count = 3000
        try """
            version: 1
            name: partition
            source:
              generate: {count: \(count), size: 16}
            stages:
              - name: nap
                builtin: sleep
                options: {duration: 2ms}
                max-attempts: 5
            sink:
              file: \(harness.path("out.txt"))
              format: lines
            broker:
              heartbeat-interval: 200ms
            """.write(toFile: harness.path("partition.yaml"), atomically: true, encoding: .utf8)

        // The broker on the head host, reachable over the link; the aggregator on every interface,
        // so workers find it at the address they used for the broker.
        let dispatch = "tcp://\(TwoHosts.headAddress):5555"
        let broker = try harness.start("broker", TwoHosts.ip, hosts.inside(hosts.head, [
            "broker", harness.path("partition.yaml"), "--bind", dispatch, "--aggregator", "tcp://0.0.0.0:5557",
            "--events", harness.ipc("events"), "--insecure", "--json",
        ]))
        // ipc:// crosses network namespaces (it is a file): the feed is read from outside them.
        // Its first metrics snapshot says the broker's loop runs.
        let events = try harness.watchEvents(harness.ipc("events"))
        try #require(events.wait(until: { !events.events("metrics").isEmpty }, timeout: .seconds(20)), "\(harness.transcripts)")
        try harness.start("far-worker", TwoHosts.ip, hosts.inside(hosts.node, ["worker", "--broker", dispatch, "--insecure"]))
        try harness.start("near-worker", TwoHosts.ip, hosts.inside(hosts.head, ["worker", "--broker", dispatch, "--insecure"]))

        // Cut the far host off once both workers are busy.
        let sink = harness.path("out.txt")
        let start = ContinuousClock.now
        while RunCommandTests.lines(sink).count < count / 4 && ContinuousClock.now - start < .seconds(60) && broker.isRunning {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(RunCommandTests.lines(sink).count < count, "the run ended before the partition; the test proves nothing")
        try hosts.partitionNode()

        #expect(broker.wait(timeout: .seconds(90)) == 0, "\(harness.transcripts)")
        let lines = RunCommandTests.lines(sink)
        #expect(lines.count == count, "sink has \(lines.count) lines, expected \(count)")
        #expect(Set(lines).count == lines.count, "duplicates in the sink")
        #expect(events.wait(until: { !events.events("event.worker.expired").isEmpty }, timeout: .seconds(5)),
                "the broker never noticed the partition: \(harness.transcripts)")
        #expect(Set(events.events("event.worker.ready").filter { $0["stage"] as? String == "nap" }.compactMap { $0["id"] as? String }).count >= 2,
                "\(harness.transcripts)")
    }
}
