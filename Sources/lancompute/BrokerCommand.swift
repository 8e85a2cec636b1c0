// `lancompute broker FILE`: the head node — dispatches to workers that connect from anywhere on the LAN.

import ArgumentParser
import Foundation
import LANCompute
import Logging

struct BrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run a pipeline's broker and aggregator; workers connect with 'lancompute worker'.",
        discussion: """
            Workers receive the topology from the broker. With a finite source the broker exits when \
            every item is in the sink or dead-lettered: 0 if none was dead-lettered, 1 otherwise.
            """
    )

    @Argument(help: "The topology file.")
    var file: String

    @Option(help: "Dispatch endpoint (ROUTER) workers and MDP clients connect to (default: the topology's, tcp://127.0.0.1:5555).")
    var bind: String?

    @Option(help: "Events and metrics PUB endpoint (default: the topology's, tcp://127.0.0.1:5556); 'none' for no feed.")
    var events: String?

    @Option(help: "Aggregator PULL endpoint final outputs are pushed to (default: the topology's, tcp://127.0.0.1:5557).")
    var aggregator: String?

    @Option(help: "Read this file instead of the topology's source.")
    var input: String?

    @Option(help: "Write the sink to this file instead of the topology's sink.")
    var output: String?

    @Option(name: .customLong("metrics-http"), help: "Serve Prometheus metrics at HOST:PORT/metrics.")
    var metricsHTTP: String?

    @Option(name: .customLong("metrics-interval"), help: "Seconds between metrics snapshots on the feed.")
    var metricsInterval: Double = 1

    @Option(name: .customLong("dead-letter"), help: "Dead-letter file (default: beside the sink).")
    var deadLetter: String?

    @Option(help: "Seconds to drain in-flight work after SIGINT/SIGTERM.")
    var grace: Double = 10

    @Flag(help: "Allow binding to non-loopback addresses without encryption.")
    var insecure = false

    @Flag(help: "Print the summary as one JSON object on standard output.")
    var json = false

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap(default: .info)
        let topology = loadTopologyForRun(file, input: input, output: output)
        let dispatch = bind ?? topology.broker.bind
        let aggregatorEndpoint = aggregator ?? topology.broker.aggregator
        let eventsEndpoint = events ?? topology.broker.events
        checkExposure(dispatch, insecure: insecure, option: "--bind")
        checkExposure(aggregatorEndpoint, insecure: insecure, option: "--aggregator")
        if eventsEndpoint != "none" { checkExposure(eventsEndpoint, insecure: insecure, option: "--events") }
        let broker = Broker(configuration: BrokerConfiguration(
            topology: topology, dispatchEndpoint: dispatch, aggregatorEndpoint: aggregatorEndpoint,
            eventsEndpoint: eventsEndpoint == "none" ? nil : eventsEndpoint, eventsRequired: true,
            deadLetterPath: deadLetter, metricsInterval: .milliseconds(Int(max(0.05, metricsInterval) * 1000)), metricsHTTP: metricsHTTP, gracePeriod: .milliseconds(Int(grace * 1000))))
        let trap = SignalTrap { broker.stop() }
        let summary: RunSummary
        do {
            summary = try broker.run(onReady: { endpoints in
                var line = "broker ready: dispatch \(endpoints.dispatch), aggregator \(endpoints.aggregator)"
                if let events = endpoints.events { line += ", events \(events)" }
                if let source = endpoints.source { line += ", source \(source)" }
                if let http = endpoints.metricsHTTP { line += ", metrics http://\(http)/metrics" }
                FileHandle.standardError.write(Data((line + "\n").utf8))
            })
        } catch {
            fail("error \(error.message)")
        }
        _ = trap
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
