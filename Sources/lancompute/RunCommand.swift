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
            Exits 0 when every item reached the sink, 1 when any was dead-lettered or left unfinished. \
            The dispatch and aggregator endpoints are free loopback ports unless --bind/--aggregator say otherwise.
            """
    )

    @Argument(help: "The topology file.")
    var file: String

    @Option(help: "Local workers to start (default: one per core).")
    var workers: Int?

    @Option(help: "Handler slots per stage in each worker, over the topology's replicas (default: a stage's replicas; without, the worker's share of the cores for exec stages and one for builtins).")
    var slots: Int?

    @Flag(help: "Print no progress line.")
    var quiet = false

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var options: PipelineRunOptions
    @OptionGroup var token: HTTPTokenOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var discovery: AnnounceOptions

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1") }
    }

    func run() throws {
        logging.bootstrap(default: .warning)
        var topology = loadTopologyForRun(file, input: options.input, output: options.output)
        topology.broker = broker.applied(to: topology.broker)
        let directory = URL(fileURLWithPath: file).deletingLastPathComponent().standardizedFileURL.path
        checkStagesCanRunHere(topology, directory: directory)
        var configuration = options.configuration(
            for: topology, dispatch: broker.bind ?? "tcp://127.0.0.1:*", aggregator: broker.aggregator ?? "tcp://127.0.0.1:*",
            events: topology.broker.events, eventsRequired: false, insecure: broker.insecure)
        configuration.security = broker.security
        let security = configuration.security
        let access = try token.access(secured: configuration.security != nil)
        configuration.httpAccess = access
        let cluster: LocalCluster
        do {
            cluster = try LocalCluster(
                configuration: configuration,
                workers: workers ?? ProcessInfo.processInfo.activeProcessorCount,
                workerTemplate: WorkerConfiguration(brokerEndpoint: "", slots: slots, workingDirectory: directory))
        } catch {
            fail(error)
        }
        let trap = SignalTrap(again: { cluster.stopDraining() }, againNote: drainCutNote) { cluster.stop() }
        let showProgress = !quiet && !options.json && isatty(2) != 0
        let name = topology.name
        var onProgress: (@Sendable (RunProgress) -> Void)?
        if showProgress {
            onProgress = { @Sendable (progress: RunProgress) -> Void in
                let line = "\r\u{1B}[2K" + RunReport.progressLine(progress, pipeline: name)
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
        let summary: RunSummary
        let announcer = AnnouncerSlot()
        let discovery = self.discovery
        defer { announcer.stop() }
        do {
            summary = try cluster.run(onReady: { endpoints in
                announcer.set(discovery.start(endpoints, security: security, logger: Logger(label: "lancompute.discovery")))
                if let http = endpoints.metricsHTTP {
                    FileHandle.standardError.write(Data("dashboard \(access.pageURL(http)), \(access.metricsNote(http))\n".utf8))
                }
            }, onProgress: onProgress)
        } catch {
            if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
            fail(error)
        }
        _ = trap
        if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
        try options.finish(with: summary, sink: topology.sink)
    }

    /// A local run whose builtin or exec stage cannot run on this machine would wait forever:
    /// say why and stop. Stages without a handler, or whose `requires` this machine does not
    /// meet, wait for other workers to join; say that too.
    private func checkStagesCanRunHere(_ topology: Topology, directory: String) {
        let capabilities = NodeInfo.capabilities(node: "local", labels: [:], credit: 1, batch: 1, measuringSpeed: false)
        for stage in topology.stages {
            if case .external = stage.handler {
                FileHandle.standardError.write(Data("lancompute: stage \(stage.name) has no handler: the run waits for a worker that registers it (see Docs/stages.md)\n".utf8))
                continue
            }
            if case .unavailable(let reason) = StageHandlers.availability(of: stage, swiftFunctions: [:], workingDirectory: directory) {
                fail(RuntimeError(.stageCannotRunHere, "stage \(stage.name) cannot run on this machine: \(reason)"))
            }
            if let unmet = stage.requires.unmetReason(capabilities) {
                FileHandle.standardError.write(Data("lancompute: stage \(stage.name) \(unmet) and this machine does not qualify: the run waits for a worker that does\n".utf8))
            }
        }
    }
}
