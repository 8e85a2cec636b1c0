// Which stages of a broker's topology this machine could serve, and why not: the worker's own session core, driven once without registering.

import Foundation

/// One stage and whether a worker here would serve it.
public struct StageVerdict: Sendable, Equatable {
    public var stage: String
    /// Nil: it would; else why not, as the worker would log it.
    public var reason: String?
}

/// What `lancompute doctor --broker` reports: the worker's session core runs its start (the
/// topology, the stage files into the cache, the availability and `requires` checks) with `ask`
/// standing for the sockets, and stops where the worker would register. So the answer is the one a
/// worker started with the same configuration would come to; nothing is registered, and no
/// `mmi.unserved` report is sent (the machine is not a worker of the cluster).
public enum ServabilityCheck {
    /// `ask(service, body)` sends one MMI request and returns the reply body, or nil when none came in time.
    public static func run(
        configuration: WorkerConfiguration, ask: (String, [[UInt8]]) throws -> [[UInt8]]?
    ) throws -> (pipeline: String, verdicts: [StageVerdict]) {
        var core = WorkerSessionCore(configuration: configuration)
        var inputs: [WorkerInput] = [.start]
        var verdicts: [StageVerdict] = []
        var pipeline = ""
        var done = false
        var handled = 0
        while !done, !inputs.isEmpty, handled < 10_000 {
            handled += 1
            let input = inputs.removeFirst()
            for action in core.handle(input, at: .now) {
                switch action {
                case .requestTopology:
                    guard let body = try ask("mmi.topology", []) else {
                        throw RuntimeError(.brokerUnreachable, "the broker at \(configuration.brokerEndpoint) did not answer mmi.topology; is it running, and is that its dispatch endpoint?")
                    }
                    if body.count == 2, let topology = try? JSONDecoder().decode(Topology.self, from: Data(body[1])) {
                        pipeline = topology.name
                    }
                    inputs.append(.topologyReply(ClientMessage(service: "mmi.topology", body: body).frames))
                case .fetchStageFiles(let files):
                    for file in files {
                        if let cache = configuration.stageFileCache, cache.holds(file) {
                            inputs.append(.stageFileStored(sha256: file.sha256, failure: nil))
                        } else if let body = try ask(StageFiles.service, [Array(file.sha256.utf8)]) {
                            inputs.append(.topologyReply(ClientMessage(service: StageFiles.service, body: body).frames))
                        } else {
                            inputs.append(.stageFileStored(sha256: file.sha256, failure: "the broker did not send it"))
                        }
                    }
                case .storeStageFile(let file, let content):
                    let failure = configuration.stageFileCache.map { $0.store(file, content: content) } ?? "no stage file cache"
                    inputs.append(.stageFileStored(sha256: file.sha256, failure: failure))
                case .reportUnserved:
                    inputs.append(.topologyReply(ClientMessage(service: UnservedReport.service, body: [Array("200".utf8)]).frames))
                case .notice(.serving(let stage, _, _)):
                    verdicts.append(StageVerdict(stage: stage, reason: nil))
                case .notice(.notServing(let stage, let reason)):
                    verdicts.append(StageVerdict(stage: stage, reason: reason))
                case .notice(.unexpectedTopologyReply(_, let reason)):
                    throw RuntimeError(.brokerUnreachable, "the broker at \(configuration.brokerEndpoint) answered mmi.topology with something unexpected: \(reason)")
                case .fail(let error):
                    throw error
                case .openSession, .reconnect, .finish:
                    done = true
                case .send, .pushToAggregator, .runJobs, .withdrawJobs, .scheduleTick, .notice:
                    break
                }
            }
        }
        return (pipeline, verdicts)
    }
}
