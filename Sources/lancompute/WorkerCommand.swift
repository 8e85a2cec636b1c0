// `lancompute worker --broker EP`: serves every stage this machine can, for whichever pipeline the broker runs.

import ArgumentParser
import Foundation
import LANCompute
import Logging

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve pipeline stages for a broker; reconnects whenever the broker goes away.",
        discussion: """
            The worker asks the broker for the topology, then registers for every stage it can serve: \
            builtins always, exec stages when the command resolves on this machine (relative to --workdir), \
            and only stages whose 'requires' this machine meets. The scripts an exec command names under the \
            topology's directory come from the broker, checked by SHA-256 and kept in --cache, so nothing need \
            be copied here by hand. It tells the broker why it skips a stage. On SIGINT or SIGTERM it takes no new items, \
            finishes and answers the items it holds for up to --grace seconds, hands the rest back and \
            disconnects; a second signal hands everything back at once.
            """
    )

    @Option(help: "The broker's dispatch endpoint.")
    var broker: String = "tcp://127.0.0.1:5555"

    @Option(help: "Handler slots per stage (default: each stage's replicas).")
    var slots: Int?

    @Option(name: .customLong("label"), help: "A K=V label announced to the broker (repeatable).")
    var labels: [String] = []

    @Option(help: "Serve only these stages (comma-separated).")
    var stages: String?

    @Option(help: "Directory exec commands resolve against (default: the current directory).")
    var workdir: String?

    @Option(help: "Directory for stage files fetched from the broker (default: ~/.lancompute/cache, or $LANCOMPUTE_HOME/cache).")
    var cache: String?

    @Option(help: "Seconds a stopped worker lets the items it holds finish before handing the rest back.")
    var grace: Double = 10

    @OptionGroup var keys: ClientKeyOptions

    @Flag(help: "Connect to a broker beyond loopback without --broker-key: it is not authenticated, and may make this machine run any command.")
    var insecure = false

    @Option(name: .customLong("allow-exec"), help: "Run only exec programs matching this glob (repeatable): with a /, the resolved path; without, the program's name.")
    var allowExec: [String] = []

    @OptionGroup var logging: LoggingOptions
    @OptionGroup var discovery: DiscoverOptions

    func validate() throws {
        try checkEndpoint(broker, option: "--broker")
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        for label in labels where !label.contains("=") || label.hasPrefix("=") {
            throw ValidationError("--label takes K=V, got '\(label)'")
        }
    }

    func run() throws {
        logging.bootstrap(default: .info)
        var labelValues: [String: String] = [:]
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            labelValues[String(parts[0])] = String(parts[1])
        }
        let directory = workdir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? FileManager.default.currentDirectoryPath
        var configuration = WorkerConfiguration(
            brokerEndpoint: broker, slots: slots, labels: labelValues,
            stages: stages.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) },
            workingDirectory: directory, stopGrace: .milliseconds(Int(grace * 1000)))
        configuration.curve = keys.client
        configuration.insecure = insecure
        configuration.stageFileCache = cache.map { StageFileCache(directory: URL(fileURLWithPath: $0).standardizedFileURL.path) }
            ?? .userDefault
        if !allowExec.isEmpty { configuration.execPolicy = ExecPolicy(patterns: allowExec) }
        if discovery.discover { return discovery.serve(configuration) }
        let worker = Worker(configuration: configuration)
        let trap = SignalTrap(again: { worker.stopAtOnce() }) { worker.stop() }
        do {
            try worker.run()
        } catch let error as RuntimeError {
            fail(error)
        } catch {
            fail("error LC2020: the worker stopped: \(error)")
        }
        _ = trap
    }
}
