// Command-line options that override a topology's `broker:` settings, for commands that start a broker.

import ArgumentParser
import Foundation
import LANCompute

/// Shared by the commands that run a broker (`@OptionGroup var broker: BrokerOptions`).
/// Values are checked like the same keys in a topology file.
struct BrokerOptions: ParsableArguments {
    @Option(help: "Endpoint of the MDP ROUTER (overrides broker.bind).")
    var bind: String?

    @Option(help: "Endpoint of the events PUB socket (overrides broker.events); 'none' for no feed.")
    var events: String?

    @Option(help: "Endpoint of the aggregator PULL socket (overrides broker.aggregator).")
    var aggregator: String?

    @Option(help: "Heartbeat interval, e.g. 500ms (overrides broker.heartbeat-interval).")
    var heartbeatInterval: String?

    @Option(help: "Heartbeats missed before a peer is dead (overrides broker.heartbeat-liveness).")
    var heartbeatLiveness: Int?

    @Option(help: "Items one stage may queue before the source pauses (overrides broker.queue-limit).")
    var queueLimit: Int?

    @Flag(help: "Allow binding to non-loopback addresses without keys (no encryption, no authentication).")
    var insecure = false

    @Option(help: "Key directory: DIR/secret.key is the broker's key, DIR/authorized_keys the keys it lets in (see Docs/security.md).")
    var keys: String?

    func validate() throws {
        for (name, endpoint) in [("--bind", bind), ("--events", events == "none" ? nil : events), ("--aggregator", aggregator)] {
            if let endpoint { try checkEndpoint(endpoint, option: name, use: .bind) }
        }
        if let heartbeatInterval {
            guard let interval = DurationLiteral.parse(heartbeatInterval), interval > .zero else {
                throw ValidationError("--heartbeat-interval: '\(heartbeatInterval)' is not a duration such as 250ms or 2s")
            }
        }
        if let heartbeatLiveness, heartbeatLiveness < 1 {
            throw ValidationError("--heartbeat-liveness must be at least 1")
        }
        if let queueLimit, queueLimit < 1 {
            throw ValidationError("--queue-limit must be at least 1")
        }
    }

    /// `settings` with every option given on the command line taking precedence.
    func applied(to settings: BrokerSettings) -> BrokerSettings {
        var result = settings
        if let bind { result.bind = bind }
        if let events { result.events = events }
        if let aggregator { result.aggregator = aggregator }
        if let heartbeatInterval, let interval = DurationLiteral.parse(heartbeatInterval) {
            result.heartbeatInterval = interval
        }
        if let heartbeatLiveness { result.heartbeatLiveness = heartbeatLiveness }
        if let queueLimit { result.queueLimit = queueLimit }
        return result
    }
}

/// What the commands that run a pipeline (`run`, `broker`) share besides the broker's endpoints.
struct PipelineRunOptions: ParsableArguments {
    @Option(help: "Read this file instead of the topology's source.")
    var input: String?

    @Option(help: "Write the sink to this file instead of the topology's sink.")
    var output: String?

    @Option(name: .customLong("http"), help: ArgumentHelp(
        "Serve the live dashboard, /metrics and /healthz at HOST:PORT (alone: \(HTTPOption.defaultAddress)).",
        discussion: "Loopback unless --insecure.", valueName: "host:port"))
    var http: String?

    @Option(name: .customLong("metrics-http"), help: ArgumentHelp("The same as --http.", visibility: .hidden))
    var metricsHTTP: String?

    @Option(name: .customLong("metrics-interval"), help: "Seconds between metrics snapshots on the feed.")
    var metricsInterval: Double = 1

    @Option(name: .customLong("dead-letter"), help: "Dead-letter file (default: beside the sink).")
    var deadLetter: String?

    @Option(help: "Seconds to drain in-flight work after SIGINT/SIGTERM (Ctrl-C) or a source failure.")
    var grace: Double = 10

    @Flag(help: "Print the summary as one JSON object on standard output.")
    var json = false

    @Option(name: .customLong("max-frame-size"), help: "Largest frame a peer may send, e.g. 64MiB; a larger one drops that connection.")
    var maxFrameSize: String = "64MiB"

    @Option(help: "State directory of the journal a crashed run resumes from (default: <sink>.state beside a file sink, else <pipeline>.state); 'none' for no journal.")
    var state: String?

    @Flag(help: "Start over: remove the state directory instead of resuming from it.")
    var fresh = false

    @Option(help: "When the journal is forced to disk: batch (each loop iteration that wrote), interval (every 100ms), never.")
    var fsync: String = JournalFsyncPolicy.batch.rawValue

    @Option(name: .customLong("journal-segment-size"), help: "Roll the journal's segment, compacting older ones into a snapshot, at this size.")
    var journalSegmentSize: String = "64MiB"

    @Option(name: .customLong("max-item-size"), help: "Largest item acknowledged intake takes, e.g. 16MiB; a larger one is dead-lettered.")
    var maxItemSize: String = "64MiB"

    @Option(name: .customLong("max-credit"), help: "Most items one worker connection may hold, whatever credit it announces.")
    var maxCredit: Int = WorkerLimits.defaultMaxCredit

    @Option(name: .customLong("stall-timeout"), help: "Seconds a worker may hold items without finishing one before its items go to others; 0: never.")
    var stallTimeout: Double = 600

    @Option(name: .customLong("max-client-bytes"), help: "Most bytes of MDP client requests the broker holds at once; more are answered 'error' (LC3008).")
    var maxClientBytes: String = "256MiB"

    func validate() throws {
        guard ByteSize.parse(maxClientBytes) != nil else {
            throw ValidationError("--max-client-bytes: '\(maxClientBytes)' is not a size such as 256MiB")
        }
        if maxCredit < 1 { throw ValidationError("--max-credit must be at least 1") }
        if stallTimeout < 0 { throw ValidationError("--stall-timeout must not be negative") }
        guard let size = ByteSize.parse(maxFrameSize), size > 0 else {
            throw ValidationError("--max-frame-size: '\(maxFrameSize)' is not a size such as 64MiB")
        }
        guard let itemSize = ByteSize.parse(maxItemSize), itemSize > 0 else {
            throw ValidationError("--max-item-size: '\(maxItemSize)' is not a size such as 16MiB")
        }
        if http != nil, metricsHTTP != nil { throw ValidationError("--http and --metrics-http are the same option: give one") }
        if metricsInterval <= 0 { throw ValidationError("--metrics-interval must be more than 0 seconds") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        guard JournalFsyncPolicy(rawValue: fsync) != nil else {
            throw ValidationError("--fsync: '\(fsync)' is not one of \(JournalFsyncPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let segment = ByteSize.parse(journalSegmentSize), segment >= 4096 else {
            throw ValidationError("--journal-segment-size: '\(journalSegmentSize)' is not a size of at least 4KiB")
        }
        if fresh && state == "none" { throw ValidationError("--fresh has no state to remove with --state none") }
    }

    /// The journal for `topology`: the state directory given, or beside a file sink, or `<pipeline>.state`.
    func journal(for topology: Topology) -> JournalConfiguration? {
        if state == "none" { return nil }
        let directory: String
        if let state {
            directory = state
        } else if case .file(let path) = topology.sink.kind {
            directory = path + ".state"
        } else {
            directory = topology.name + ".state"
        }
        return JournalConfiguration(directory: directory, fsync: JournalFsyncPolicy(rawValue: fsync) ?? .batch, fresh: fresh,
                                    segmentSize: ByteSize.parse(journalSegmentSize) ?? 64 << 20)
    }

    /// The broker's configuration for `topology` with these options and the endpoints chosen by the command.
    func configuration(
        for topology: Topology, dispatch: String, aggregator: String, events: String, eventsRequired: Bool, insecure: Bool
    ) -> BrokerConfiguration {
        var configuration = BrokerConfiguration(
            topology: topology, dispatchEndpoint: dispatch, aggregatorEndpoint: aggregator,
            eventsEndpoint: events == "none" ? nil : events, eventsRequired: eventsRequired,
            deadLetterPath: deadLetter, metricsInterval: .milliseconds(Int(metricsInterval * 1000)),
            metricsHTTP: http ?? metricsHTTP, gracePeriod: .milliseconds(Int(grace * 1000)))
        configuration.maxFrameSize = Int64(ByteSize.parse(maxFrameSize) ?? 64 * 1024 * 1024)
        configuration.maxItemSize = Int64(ByteSize.parse(maxItemSize) ?? 64 * 1024 * 1024)
        configuration.workerLimits = WorkerLimits(
            maxCredit: maxCredit, stallTimeout: stallTimeout > 0 ? .milliseconds(Int(stallTimeout * 1000)) : nil,
            clientRequestBytes: ByteSize.parse(maxClientBytes) ?? WorkerLimits.defaultClientRequestBytes)
        // The engine refuses an unencrypted bind the network can reach (LC2005) unless this is set.
        configuration.insecure = insecure
        configuration.journal = journal(for: topology)
        return configuration
    }

    /// Prints the summary (JSON on standard output, or text on standard error) and exits as it says.
    func finish(with summary: RunSummary, sink: SinkSpec) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            FileHandle.standardError.write(Data((RunReport.summary(summary, sink: sink) + "\n").utf8))
        }
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}
