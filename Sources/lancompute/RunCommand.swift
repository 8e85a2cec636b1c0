// `lancompute run FILE`: the whole pipeline on this machine — broker, aggregator and local workers.

import ArgumentParser
import Foundation
import LANCompute
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline on this machine: broker, aggregator and workers in one command.",
        discussion: """
            Reads the source, pushes every item through the stages, writes the sink, and prints a summary. \
            Exits 0 when every item reached the sink, 1 when any was dead-lettered or left unfinished.
            """
    )

    @Argument(help: "The topology file.")
    var file: String

    @Option(help: "Read this file instead of the topology's source.")
    var input: String?

    @Option(help: "Write the sink to this file instead of the topology's sink.")
    var output: String?

    @Option(help: "Local workers to start (default: one per core).")
    var workers: Int?

    @Option(help: "Handler slots per stage in each worker (default: each stage's replicas).")
    var slots: Int?

    @Option(help: "Dispatch endpoint (default: a free port on 127.0.0.1).")
    var bind: String?

    @Option(help: "Aggregator endpoint (default: a free port on 127.0.0.1).")
    var aggregator: String?

    @Option(help: "Events and metrics PUB endpoint; 'none' for no feed.")
    var events: String = "tcp://127.0.0.1:5556"

    @Option(name: .customLong("metrics-http"), help: "Serve Prometheus metrics at HOST:PORT/metrics.")
    var metricsHTTP: String?

    @Option(name: .customLong("metrics-interval"), help: "Seconds between metrics snapshots on the feed.")
    var metricsInterval: Double = 1

    @Option(name: .customLong("dead-letter"), help: "Dead-letter file (default: beside the sink).")
    var deadLetter: String?

    @Option(help: "Seconds to drain in-flight work after Ctrl-C.")
    var grace: Double = 10

    @Flag(help: "Print no progress line.")
    var quiet = false

    @Flag(help: "Print the summary as one JSON object on standard output.")
    var json = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1") }
    }

    func run() throws {
        logging.bootstrap(default: .warning)
        let topology = loadTopologyForRun(file, input: input, output: output)
        let directory = URL(fileURLWithPath: file).deletingLastPathComponent().standardizedFileURL.path
        let configuration = BrokerConfiguration(
            topology: topology,
            dispatchEndpoint: bind ?? "tcp://127.0.0.1:*",
            aggregatorEndpoint: aggregator ?? "tcp://127.0.0.1:*",
            eventsEndpoint: events == "none" ? nil : events,
            eventsRequired: false,
            deadLetterPath: deadLetter,
            metricsInterval: .milliseconds(Int(max(0.05, metricsInterval) * 1000)), metricsHTTP: metricsHTTP,
            gracePeriod: .milliseconds(Int(grace * 1000)))
        let cluster: LocalCluster
        do {
            cluster = try LocalCluster(
                configuration: configuration,
            workers: workers ?? ProcessInfo.processInfo.activeProcessorCount,
                workerTemplate: WorkerConfiguration(brokerEndpoint: "", slots: slots, workingDirectory: directory))
        } catch {
            fail("error \(error.message)")
        }
        let trap = SignalTrap { cluster.stop() }
        let showProgress = !quiet && !json && isatty(2) != 0
        let name = topology.name
        var onProgress: (@Sendable (RunProgress) -> Void)?
        if showProgress {
            onProgress = { @Sendable (progress: RunProgress) -> Void in
                let line = "\r\u{1B}[2K" + RunReport.progressLine(progress, pipeline: name)
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
        let summary: RunSummary
        do {
            summary = try cluster.run(onProgress: onProgress)
        } catch {
            if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
            fail("error \(error.message)")
        }
        _ = trap
        if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            FileHandle.standardError.write(Data((RunReport.summary(summary, sink: topology.sink) + "\n").utf8))
        }
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}
