// `lancompute feed` and other producers into a broker with a pull source: acknowledged lines land in the sink exactly once.

import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A broker whose source is `pull` (an identity stage, a file sink of lines) and one worker, in a harness.
struct FedPipeline {
    let harness: ProcessHarness
    let broker: ChildProcess
    var dispatch: String { harness.ipc("dispatch") }
    var source: String { harness.ipc("source") }
    var events: String { harness.ipc("events") }
    var sinkPath: String { harness.path("out.txt") }

    init(_ harness: ProcessHarness, brokerArguments: [String] = []) throws {
        self.harness = harness
        try """
            version: 1
            name: fed
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: pass
                builtin: identity
            sink:
              file: \(harness.path("out.txt"))
              format: lines
            """.write(toFile: harness.path("fed.yaml"), atomically: true, encoding: .utf8)
        broker = try harness.lancompute("broker", [
            "broker", harness.path("fed.yaml"), "--bind", harness.ipc("dispatch"), "--aggregator", harness.ipc("aggregator"),
            "--events", harness.ipc("events"), "--json",
        ] + brokerArguments)
        guard try harness.waitUntilServing(harness.ipc("dispatch")) else {
            throw HarnessError("the broker did not start\n\(harness.transcripts)")
        }
        try harness.lancompute("worker", ["worker", "--broker", harness.ipc("dispatch")])
    }

    /// Stops the streaming pipeline (it drains, then writes the sink) and returns the sink's lines as bytes.
    func stop() throws -> [Data] {
        broker.signal(SIGTERM)
        guard broker.wait(timeout: .seconds(40)) != nil else { throw HarnessError("the broker did not stop\n\(harness.transcripts)") }
        return Self.lines(of: (try? Data(contentsOf: URL(fileURLWithPath: sinkPath))) ?? Data())
    }

    /// Waits (bounded) until the sink holds `count` lines.
    func waitForSink(lines count: Int, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: sinkPath))) ?? Data()
            if data.reduce(0, { $0 + ($1 == 0x0A ? 1 : 0) }) >= count { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    static func lines(of data: Data) -> [Data] {
        data.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { Data($0) }
    }
}

/// Numbered lines; with `binary`, every hundredth also holds NUL, a CR and bytes that are not UTF-8.
func feedLines(_ count: Int, trial: Int, binary: Bool = false) -> [Data] {
    (1...count).map { index in
        var line = Data("trial \(trial) line \(index)".utf8)
        if binary && index % 100 == 0 { line += Data([0x00, 0xFF, 0x0D, 0xFE, 0x41, 0x00]) }
        return line
    }
}

func write(_ lines: [Data], to path: String) throws {
    var data = Data()
    for line in lines { data += line + Data([0x0A]) }
    try data.write(to: URL(fileURLWithPath: path))
}

/// nil when `sink` holds exactly `expected`, each line once; otherwise what differs, in short.
func difference(_ sink: [Data], _ expected: [Data]) -> String? {
    var counts: [Data: Int] = [:]
    for line in sink { counts[line, default: 0] += 1 }
    let duplicated = counts.filter { $0.value > 1 }.count
    let missing = expected.filter { counts[$0] == nil }
    let unexpected = Set(sink).subtracting(expected).count
    if duplicated == 0 && missing.isEmpty && unexpected == 0 && sink.count == expected.count { return nil }
    return "\(sink.count) lines in the sink for \(expected.count) fed: \(missing.count) missing (first: \(missing.first.map { Array($0) } ?? [])), \(duplicated) duplicated, \(unexpected) unexpected"
}

@Suite(.serialized, .timeLimit(.minutes(4))) struct FeedTests {
    @Test func acknowledgedFeedsPutEveryLineInTheSinkExactlyOnce() throws {
        for trial in 1...3 {
            let harness = try ProcessHarness()
            defer { harness.shutDown() }
            let pipeline = try FedPipeline(harness)
            let lines = feedLines(20_000, trial: trial, binary: trial == 1)
            try write(lines, to: harness.path("in.txt"))
            let feed = try harness.lancompute("feed", ["feed", pipeline.dispatch, harness.path("in.txt")])
            #expect(feed.wait(timeout: .seconds(90)) == 0, "trial \(trial)\n\(harness.transcripts)")
            #expect(feed.standardError.contains("fed 20,000 lines"), "\(feed.transcript)")
            let sink = try pipeline.stop()
            // Exactly once: as many lines as fed, and the same multiset.
            #expect(difference(sink, lines) == nil, "trial \(trial)")
        }
    }

    @Test func aTCPResetMidFeedStillPutsEveryLineInTheSinkOnce() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try FedPipeline(harness)
        let lines = feedLines(30_000, trial: 1)
        try write(lines, to: harness.path("in.txt"))
        let socketPath = String(pipeline.dispatch.dropFirst("ipc://".count))
        let proxyScript = ProcessHarness.packageRoot.appendingPathComponent("Scripts/chaos/tcp_reset_proxy.py").path
        let proxy = try harness.python("proxy", [proxyScript, socketPath, "200000"])
        let deadline = ContinuousClock.now + .seconds(10)
        while !proxy.standardOutput.contains("listening") && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let port = try #require(proxy.standardOutput.split(separator: "\n").first?.split(separator: " ").last, "\(proxy.transcript)")
        let feed = try harness.lancompute("feed", ["feed", "tcp://127.0.0.1:\(port)", harness.path("in.txt"), "--resend-after", "1"])
        #expect(feed.wait(timeout: .seconds(90)) == 0, "\(harness.transcripts)")
        #expect(proxy.standardOutput.contains("reset"), "the proxy never cut the connection; the test proves nothing\n\(proxy.transcript)")
        let sink = try pipeline.stop()
        #expect(difference(sink, lines) == nil)
    }

    @Test func anOversizeLineIsDeadLetteredReportedAndFailsTheFeed() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try FedPipeline(harness, brokerArguments: ["--max-item-size", "1KiB"])
        var lines = feedLines(100, trial: 1)
        // Bytes as they are, NUL and non-UTF-8 included: the dead letter must hold exactly these.
        lines[50] = Data(repeating: UInt8(ascii: "x"), count: 5000) + Data([0x00, 0xFF, 0xFE, 0x0D, 0x41])
        try write(lines, to: harness.path("in.txt"))
        let feed = try harness.lancompute("feed", ["feed", pipeline.dispatch, harness.path("in.txt")])
        #expect(feed.wait(timeout: .seconds(60)) == 1, "\(harness.transcripts)")
        #expect(feed.standardError.contains("LC2028") && feed.standardError.contains("line 51"), "\(feed.transcript)")
        let sink = try pipeline.stop()
        #expect(difference(sink, lines.enumerated().filter { $0.offset != 50 }.map(\.element)) == nil)
        let deadLetters = (try? String(contentsOfFile: harness.path("out.dead-letter.jsonl"), encoding: .utf8)) ?? ""
        #expect(deadLetters.contains("\"reason_code\":\"too-large\""), "\(deadLetters.prefix(300))")
        #expect(deadLetters.contains("\"item_base64\":\"\(lines[50].base64EncodedString())\""), "\(deadLetters.prefix(300))")
    }

    @Test func feedFailsFastWhereNothingListens() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try "a\nb\n".write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        // A port that was free a moment ago: nothing listens there.
        let probe = try Socket(.router)
        try probe.bind("tcp://127.0.0.1:*")
        let endpoint = try probe.lastEndpoint
        probe.close()
        let started = ContinuousClock.now
        let feed = try harness.lancompute("feed", ["feed", endpoint, harness.path("in.txt")])
        #expect(feed.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(feed.standardError.contains("error LC2025") && !feed.standardError.contains("fed 2 lines"), "\(feed.transcript)")
    }

    @Test func feedAtTheEventsPortOrThePullSourceSaysItIsNotADispatchSocket() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try FedPipeline(harness)
        try "a\nb\n".write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        for endpoint in [pipeline.events, pipeline.source] {
            let started = ContinuousClock.now
            let feed = try harness.lancompute("feed-\(endpoint.hasSuffix("events") ? "events" : "source")", ["feed", endpoint, harness.path("in.txt")])
            #expect(feed.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
            #expect(ContinuousClock.now - started < .seconds(4), "\(endpoint)")
            #expect(feed.standardError.contains("error LC2026") && feed.standardError.contains("dispatch"), "\(feed.transcript)")
        }
        // Nothing was fed.
        #expect(try pipeline.stop().isEmpty)
    }

    @Test func thePythonProducerFeedsWithAcknowledgements() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try FedPipeline(harness)
        let lines = feedLines(10_000, trial: 1, binary: true)
        try write(lines, to: harness.path("in.txt"))
        let producer = try harness.python("producer", ["Topologies/workers/feed_producer.py", "--broker", pipeline.dispatch, harness.path("in.txt")])
        #expect(producer.wait(timeout: .seconds(90)) == 0, "\(harness.transcripts)")
        #expect(producer.standardError.contains("acknowledged all of them"), "\(producer.transcript)")
        let sink = try pipeline.stop()
        #expect(difference(sink, lines) == nil)
    }

    @Test func aPlainPushProducerStillFeedsThePullSource() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let pipeline = try FedPipeline(harness)
        let lines = feedLines(2000, trial: 1)
        try write(lines, to: harness.path("in.txt"))
        // Any ZeroMQ PUSH: one item per frame. It stays connected until killed: what the broker's PULL
        // has not read when a producer disconnects is lost (at most once), and this test is not about that.
        let producer = try harness.python("push", ["-c", """
            import sys, time, zmq
            push = zmq.Context().socket(zmq.PUSH)
            push.connect(sys.argv[1])
            for line in open(sys.argv[2], "rb"):
                push.send(line.rstrip(b"\\n"))
            print("sent", flush=True)
            time.sleep(120)
            """, pipeline.source, harness.path("in.txt")])
        #expect(pipeline.waitForSink(lines: lines.count, timeout: .seconds(60)), "\(harness.transcripts)")
        producer.signal(SIGKILL)
        // feed --at-most-once is such a producer; it waits for the handshake, PUSHes and exits 0 unconfirmed.
        let feed = try harness.lancompute("feed", ["feed", "--at-most-once", pipeline.source, harness.path("in.txt")])
        #expect(feed.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        #expect(feed.standardError.contains("at most once"), "\(feed.transcript)")
        let sink = try pipeline.stop()
        #expect(difference(Array(sink.prefix(lines.count)), lines) == nil)
    }
}
