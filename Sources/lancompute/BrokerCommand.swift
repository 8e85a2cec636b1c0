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
            every item is in the sink or dead-lettered: 0 if none was dead-lettered, 1 otherwise. \
            Endpoints default to the topology's broker settings (tcp://127.0.0.1:5555, :5556, :5557).
            """
    )

    @Argument(help: "The topology file.")
    var file: String

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var options: PipelineRunOptions
    @OptionGroup var token: HTTPTokenOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var discovery: AnnounceOptions

    func run() throws {
        logging.bootstrap(default: .info)
        var topology = loadTopologyForRun(file, input: options.input, output: options.output)
        topology.broker = broker.applied(to: topology.broker)
        let settings = topology.broker
        var configuration = options.configuration(
            for: topology, dispatch: settings.bind, aggregator: settings.aggregator, events: settings.events, eventsRequired: true,
            insecure: broker.insecure)
        configuration.security = broker.security
        // Workers fetch the scripts exec commands name from here, so a new machine needs none copied.
        configuration.topologyDirectory = URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path
        let security = configuration.security
        let access = try token.access(secured: configuration.security != nil)
        configuration.httpAccess = access
        let broker = Broker(configuration: configuration)
        let trap = SignalTrap(again: { broker.stopDraining() }, againNote: drainCutNote) { broker.stop() }
        let reload = ReloadTrap { broker.reloadKeys() }
        let summary: RunSummary
        let announcer = AnnouncerSlot()
        let discovery = self.discovery
        defer { announcer.stop() }
        do {
            summary = try broker.run(onReady: { endpoints in
                announcer.set(discovery.start(endpoints, security: security, logger: Logger(label: "lancompute.discovery")))
                var line = "broker ready: dispatch \(endpoints.dispatch), aggregator \(endpoints.aggregator)"
                if let events = endpoints.events { line += ", events \(events)" }
                if let source = endpoints.source { line += ", source \(source)" }
                if let http = endpoints.metricsHTTP { line += ", \(access.metricsNote(http)), dashboard \(access.pageURL(http))" }
                FileHandle.standardError.write(Data((line + "\n").utf8))
            })
        } catch {
            fail(error)
        }
        _ = trap
        _ = reload
        try options.finish(with: summary, sink: topology.sink)
    }
}
