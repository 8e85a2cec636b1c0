// The worker's session logic as a state machine without sockets or clock: inputs in, actions out.

import Foundation

/// What the worker shell tells the session core.
enum WorkerInput: Sendable {
    /// The worker starts: ask the broker for the topology.
    case start
    /// The broker answered `mmi.topology` with these frames (a client-protocol message).
    case topologyReply([[UInt8]])
    /// The shell opened what ``WorkerAction/openSession(_:aggregator:)`` asked for.
    case sessionOpened
    /// A socket call of this session failed (the text says which and why).
    case sessionFailed(String)
    /// A message from the broker on the DEALER of served stage `stage`.
    case brokerMessage(stage: Int, WorkerMessage)
    /// Frames from the broker on `stage`'s DEALER that are not a worker-protocol message.
    case malformedBrokerMessage(stage: Int)
    /// Slot threads (or the inline handler) finished these items of `stage`.
    case slotResults(stage: Int, [ItemOutcome])
    /// One ``WorkerAction/pushToAggregator(_:)`` has left for the aggregator.
    case aggregatorAccepted
    /// The time asked for by the latest ``WorkerAction/scheduleTick(at:)`` has come.
    case tick
    /// The worker was asked to stop: drain within the grace period, or at once.
    case stopRequested(immediately: Bool)
    /// The stage file with this SHA-256 is in the cache (`failure` nil), or could not be put there.
    case stageFileStored(sha256: String, failure: String?)
    /// The cores the rest of the machine kept busy over the last measuring interval (owner policy).
    case ownerLoad(Double)
    /// ``WorkerAction/withdrawJobs(stage:)`` took these jobs back from `stage`'s queue: none had started.
    case jobsWithdrawn(stage: Int, [SlotJob])
    /// The machine's dynamic capability values read again (``Fingerprint/dynamicCapabilityValues``).
    case fingerprintRead([String: String])
}

/// What the session core asks the shell to do, in order.
enum WorkerAction: Equatable, Sendable {
    /// Open a DEALER to the broker (unless one is open) and send `mmi.topology` on it.
    case requestTopology
    /// For each file: report ``WorkerInput/stageFileStored(sha256:failure:)`` at once if the cache
    /// holds it, else ask the broker for it (`mmi.file`) on the topology DEALER.
    case fetchStageFiles([StageFile])
    /// Put a fetched file (its digest checked) in the cache; report ``WorkerInput/stageFileStored(sha256:failure:)``.
    case storeStageFile(StageFile, content: [UInt8])
    /// Tell the broker, on the topology DEALER, which stages this worker does not serve and why (`mmi.unserved`).
    case reportUnserved(node: String, [UnservedStage])
    /// Close the topology DEALER; open one DEALER per planned stage, its slots, and the aggregator PUSH
    /// when `aggregator` is given; then report ``WorkerInput/sessionOpened`` or ``WorkerInput/sessionFailed(_:)``.
    case openSession([StagePlan], aggregator: String?)
    /// Send `message` on the DEALER of served stage `stage`.
    case send(stage: Int, WorkerMessage)
    /// Push final outputs to the aggregator; report ``WorkerInput/aggregatorAccepted`` once they left.
    case pushToAggregator(ReplyBatch)
    /// Run these items on `stage`'s slots; results come back as ``WorkerInput/slotResults(stage:_:)``.
    case runJobs(stage: Int, [SlotJob])
    /// Take back the jobs of `stage` no slot has started; report them as ``WorkerInput/jobsWithdrawn(stage:_:)``.
    case withdrawJobs(stage: Int)
    /// Feed ``WorkerInput/tick`` at this instant (replaces any earlier request).
    case scheduleTick(at: ContinuousClock.Instant)
    /// Close this session's sockets and slots; the core asks for the topology again after `after`.
    case reconnect(after: Duration)
    /// Tell the operator.
    case notice(WorkerNotice)
    /// Close everything and return from `Worker.run()`.
    case finish
    /// Close everything and make `Worker.run()` throw this.
    case fail(RuntimeError)
}

/// A stage a worker does not serve, and why: what it tells the broker.
public struct UnservedStage: Equatable, Sendable {
    public var stage: String
    public var reason: String

    public init(stage: String, reason: String) {
        self.stage = stage
        self.reason = reason
    }
}

/// One stage this worker serves, as it registers it.
struct StagePlan: Equatable, Sendable {
    /// The stage it registers; for a chain, the chain's head.
    var spec: StageSpec
    /// A chain's members, head first, all run by one handler in one slot; empty for a stage run alone.
    var chain: [StageSpec] = []
    /// Final stages PUSH their outputs to the aggregator.
    var isFinal: Bool
    var slots: Int
    var credit: Int
    /// Items the broker may put in one REQUEST.
    var batch: Int
    var capabilities: Capabilities
    /// A cheap builtin with one slot runs on the I/O thread itself: no hand-off per batch.
    var runsInline: Bool
    /// Items a slot thread takes from the queue at once (answered together).
    var takeLimit: Int
    /// `credit` is only the start: the worker sizes it to the link as it runs (``CreditController``).
    var adaptiveCredit = false
}

/// Something the operator should know, with the level it deserves.
enum WorkerNotice: Equatable, Sendable, CustomStringConvertible {
    case noAnswer(broker: String)
    case fetchingStageFiles(count: Int, bytes: Int)
    case unexpectedTopologyReply(broker: String, reason: String)
    case notServing(stage: String, reason: String)
    case serving(stage: String, slots: Int, credit: Int)
    case creditChanged(stage: String, credit: Int, roundTrip: Duration, rate: Double)
    case servesNothing(pipeline: String)
    case brokerSilent(expiry: Duration)
    case brokerDisconnected(stage: String)
    case malformedMessage
    case malformedRequest(reason: String)
    case sessionFailed(String)
    case draining(items: Int, grace: Duration)
    case drained(finished: Int, handedBack: Int)
    case graceExpired(unfinished: Int, handedBack: Int)
    case handedBack(items: Int)
    case yielding(load: Double, threshold: Double)
    case resumed(load: Double, threshold: Double)
    case returnedToBroker(items: Int)
    case ownerPolicyUnsupported(broker: String)

    enum Level { case debug, info, notice, warning, error }

    private static func cores(_ value: Double) -> String { String(format: "%.2f", value) }

    var level: Level {
        switch self {
        case .fetchingStageFiles, .creditChanged: .debug
        case .noAnswer, .notServing, .serving: .info
        case .brokerSilent, .brokerDisconnected, .draining, .drained, .handedBack, .yielding, .resumed, .returnedToBroker: .notice
        case .ownerPolicyUnsupported: .warning
        case .unexpectedTopologyReply, .servesNothing, .malformedMessage, .malformedRequest, .graceExpired: .warning
        case .sessionFailed: .error
        }
    }

    var description: String {
        switch self {
        case .noAnswer(let broker): "no answer from the broker at \(broker); retrying"
        case .fetchingStageFiles(let count, let bytes): "checking \(count) stage file(s), \(bytes) bytes, against the cache; fetching what is missing"
        case .unexpectedTopologyReply(let broker, let reason):
            "the broker at \(broker) answered mmi.topology with something unexpected: \(reason)"
        case .notServing(let stage, let reason): "not serving stage \(stage): \(reason)"
        case .serving(let stage, let slots, let credit): "serving stage \(stage) with \(slots) slot(s), credit \(credit)"
        case .creditChanged(let stage, let credit, let roundTrip, let rate):
            "stage \(stage): credit now \(credit) (round trip \(Int((CreditController.seconds(roundTrip) * 1000).rounded())) ms, \(Int(rate.rounded())) items/s)"
        case .servesNothing(let pipeline): "this worker can serve none of the stages of pipeline \(pipeline); waiting"
        case .brokerSilent(let expiry): "no word from the broker for \(expiry); reconnecting"
        case .brokerDisconnected(let stage): "the broker disconnected this worker from stage \(stage); re-registering"
        case .malformedMessage: "LC3006: dropped a malformed message from the broker"
        case .malformedRequest(let reason): "LC3006: dropped a malformed request from the broker: \(reason)"
        case .sessionFailed(let reason): "worker session failed: \(reason)"
        case .draining(let items, let grace):
            "stopping: taking no new items; finishing the \(items) item(s) held, for up to \(grace)"
        case .drained(let finished, let handedBack):
            "drained: \(finished) item(s) finished and answered, \(handedBack) not started handed back; disconnected"
        case .graceExpired(let unfinished, let handedBack):
            "grace period over: \(unfinished) unfinished and \(handedBack) not started item(s) handed back; disconnected"
        case .handedBack(let items): "stopping at once: \(items) item(s) held handed back to the broker; disconnected"
        case .yielding(let load, let threshold):
            "yielding to owner: the rest of this machine keeps \(Self.cores(load)) cores busy (threshold \(Self.cores(threshold))); taking no new items"
        case .resumed(let load, let threshold):
            "owner gone: the rest of this machine keeps \(Self.cores(load)) cores busy (threshold \(Self.cores(threshold))); taking items again"
        case .returnedToBroker(let items): "yielding to owner: \(items) item(s) not started handed back to the broker"
        case .ownerPolicyUnsupported(let broker):
            "the broker at \(broker) does not know the owner policy: --yield-to-owner has no effect with it; upgrade the broker"
        }
    }
}

/// The worker's session: fetch the topology, register the stages it can serve, serve them, reconnect
/// with backoff when the broker goes, and drain on stop. It owns no socket and reads no clock: the
/// shell feeds it inputs with the time and carries out the actions it returns, in order.
struct WorkerSessionCore {
    /// How long `mmi.topology` may go unanswered before the worker backs off and asks again.
    static let topologyTimeout = Duration.seconds(2)
    static let firstBackoff = Duration.milliseconds(100)
    /// Short, so that a worker cut off for a long time is back within about a second of the heal
    /// (an attempt is a connect and one small request every 3 s at most: nothing on a LAN).
    static let longestBackoff = Duration.seconds(1)
    /// How long the broker may take to send every stage file a session needs.
    static let stageFilesTimeout = Duration.seconds(10)
    /// How long the broker may take to acknowledge the report of unserved stages.
    static let reportTimeout = Duration.seconds(1)

    let configuration: WorkerConfiguration
    /// Whether this machine can run a stage (handler present, command resolvable): injected, since it looks at the filesystem.
    let availability: @Sendable (StageSpec) -> StageAvailability

    private var lifecycle: Lifecycle = .idle
    private var backoff = Self.firstBackoff
    private var scheduled: ContinuousClock.Instant?
    /// The owner policy's state (`--yield-to-owner`); nil: this worker never yields.
    private var owner: OwnerPolicy?
    /// The latest measurement of the rest of the machine's load, for the refresh and the log.
    private var ownerLoad = 0.0
    /// The machine's dynamic capability values as last read; nil until the first reading (READY
    /// then carries those of the worker's start).
    private var dynamicValues: [String: String]?

    init(
        configuration: WorkerConfiguration,
        availability: (@Sendable (StageSpec) -> StageAvailability)? = nil
    ) {
        self.configuration = configuration
        self.owner = configuration.ownerThreshold.map { OwnerPolicy(threshold: $0) }
        let functions = configuration.swiftFunctions
        let directory = configuration.workingDirectory
        let policy = configuration.execPolicy
        self.availability = availability ?? { spec in
            // A broker may send any command: run only those `--allow-exec` lets through.
            if let refusal = policy.refusal(stage: spec, workingDirectory: directory) { return .unavailable(reason: refusal) }
            return StageHandlers.availability(of: spec, swiftFunctions: functions, workingDirectory: directory)
        }
    }

    /// Whether the core asked the shell to finish.
    var isFinished: Bool {
        if case .stopped = lifecycle { return true }
        return false
    }

    private enum Lifecycle {
        case idle
        case fetchingTopology(deadline: ContinuousClock.Instant)
        case fetchingFiles(FileFetch)
        /// Waiting for the broker to acknowledge `mmi.unserved` before the session opens (or backs off: `plans` empty).
        case reporting(Registration, deadline: ContinuousClock.Instant)
        case registering(Session)
        case serving(Session)
        /// Stopping gracefully: no new items are started; held ones finish until `deadline`.
        case draining(Session, Drain)
        case backingOff(until: ContinuousClock.Instant)
        case stopped
    }

    /// The state of one registration: what every served stage holds and owes the broker.
    private struct Session {
        var stages: [StageState]
        let heartbeatInterval: Duration
        let expiry: Duration
        /// The broker announced `ownerPolicy`: it reads the `yielding` refresh and handed-back outcomes,
        /// and takes the node's fingerprint refreshes (no other broker gets four-frame HEARTBEATs).
        let ownerPolicy: Bool
        /// The dynamic capability values the broker last heard from this node (READY or a refresh).
        var announced: [String: String] = [:]
        /// Pushes to the aggregator not yet confirmed as sent: replies wait for them.
        var aggregatorPending = 0
    }

    private struct StageState {
        let plan: StagePlan
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        /// Items handed to slots and not yet answered.
        var held = IDSet()
        /// Items sent by MDP clients: answered in the REPLY even on a final stage.
        var clientItems = IDSet()
        var outcomes: [ItemOutcome] = []
        var aggregated: [ItemOutcome] = []
        /// No longer registered: DISCONNECT was sent or received.
        var disconnected = false
        var lastReplyAt: ContinuousClock.Instant?
        /// Sizes the credit to the link when the topology leaves it to the worker; nil: fixed.
        var creditController: CreditController?
    }

    /// The stage files a session waits for before it registers.
    private struct FileFetch {
        let topology: Topology
        let manifest: [String: [StageFile]]
        /// Not yet in the cache, by digest.
        var waiting: Set<String>
        var failures: [String: String] = [:]
        let deadline: ContinuousClock.Instant
    }

    /// What a session will register, once the broker has heard which stages it will not.
    private struct Registration {
        let plans: [StagePlan]
        let aggregator: String?
        let pipeline: String
        let heartbeatInterval: Duration
        let liveness: Int
        let ownerPolicy: Bool
    }

    private struct Drain {
        let deadline: ContinuousClock.Instant
        var finished = 0
        /// Items that arrived after the stop: never started, handed back by the DISCONNECT.
        var handedBack = 0
    }

    // MARK: Inputs

    mutating func handle(_ input: WorkerInput, at now: ContinuousClock.Instant) -> [WorkerAction] {
        var actions: [WorkerAction] = []
        let forceSchedule: Bool
        if case .tick = input { forceSchedule = true } else { forceSchedule = false }
        if Self.isSessionInput(input), serveInPlace(input, now: now, into: &actions) {
            schedule(now: now, force: forceSchedule, into: &actions)
            return actions
        }
        switch (lifecycle, input) {
        case (.stopped, _):
            return []
        case (_, .stopRequested(let immediately)):
            stop(immediately: immediately, now: now, into: &actions)
        case (_, .ownerLoad(let load)):
            measured(load, now: now, into: &actions)
        case (_, .fingerprintRead(let values)):
            read(values, now: now, into: &actions)
        case (.idle, .start):
            askForTopology(now: now, into: &actions)
        case (.fetchingTopology, .topologyReply(let frames)):
            received(frames, now: now, into: &actions)
        case (.fetchingFiles(var fetch), .topologyReply(let frames)):
            receivedFile(frames, fetch: &fetch, into: &actions)
            if fetch.waiting.isEmpty {
                register(fetch.topology, manifest: fetch.manifest, failures: fetch.failures, now: now, into: &actions)
            } else {
                lifecycle = .fetchingFiles(fetch)
            }
        case (.fetchingFiles(var fetch), .stageFileStored(let digest, let failure)):
            if fetch.waiting.remove(digest) != nil, let failure { fetch.failures[digest] = failure }
            if fetch.waiting.isEmpty {
                register(fetch.topology, manifest: fetch.manifest, failures: fetch.failures, now: now, into: &actions)
            } else {
                lifecycle = .fetchingFiles(fetch)
            }
        case (.fetchingFiles(var fetch), .tick) where now >= fetch.deadline:
            for digest in fetch.waiting { fetch.failures[digest] = "the broker did not send it within \(Self.stageFilesTimeout)" }
            register(fetch.topology, manifest: fetch.manifest, failures: fetch.failures, now: now, into: &actions)
        case (.reporting(let registration, _), .topologyReply(let frames)):
            if let reply = try? ClientMessage(frames: frames), reply.service == UnservedReport.service {
                open(registration, now: now, into: &actions)
            }
        case (.reporting(let registration, let deadline), .tick) where now >= deadline:
            // An older broker may not answer the report: it is advice, so the session goes on without.
            open(registration, now: now, into: &actions)
        case (.fetchingTopology, .sessionFailed(let reason)), (.fetchingFiles, .sessionFailed(let reason)),
             (.reporting, .sessionFailed(let reason)):
            actions.append(.notice(.sessionFailed(reason)))
            backOff(now: now, into: &actions)
        case (.fetchingTopology(let deadline), .tick) where now >= deadline:
            actions.append(.notice(.noAnswer(broker: configuration.brokerEndpoint)))
            backOff(now: now, into: &actions)
        case (.backingOff(let until), .tick) where now >= until:
            askForTopology(now: now, into: &actions)
        case (.registering(var session), .sessionOpened):
            for position in session.stages.indices {
                let plan = session.stages[position].plan
                var capabilities = plan.capabilities
                // The machine as it is now, not as it was when the worker started.
                if let dynamicValues {
                    capabilities.values.merge(dynamicValues) { $1 }
                    capabilities = capabilities.bounded(toBytes: NodeInfo.capabilitiesLimit, valueBytes: NodeInfo.capabilityValueLimit).capabilities
                }
                if position == 0 { session.announced = Self.dynamicPart(of: capabilities) }
                // A worker that yields when it registers (again) says so at once: the broker sends it nothing.
                if session.ownerPolicy, owner?.isYielding == true { capabilities.values.merge(ownerCapabilities()) { $1 } }
                actions.append(.send(stage: position, .ready(service: plan.spec.name, capabilities: capabilities)))
                session.stages[position].lastSent = now
                session.stages[position].lastHeard = now
                if plan.adaptiveCredit {
                    session.stages[position].creditController = CreditController(floor: plan.credit, slots: plan.slots, now: now)
                }
            }
            lifecycle = .serving(session)
        case (.registering, .sessionFailed(let reason)), (.serving, .sessionFailed(let reason)):
            actions.append(.notice(.sessionFailed(reason)))
            backOff(now: now, into: &actions)
        case (.draining, .sessionFailed(let reason)):
            actions.append(.notice(.sessionFailed(reason)))
            finish(into: &actions)
        default:
            // An input that does not concern the current state (a late topology reply, a stale tick).
            break
        }
        schedule(now: now, force: forceSchedule, into: &actions)
        return actions
    }

    /// Whether a serving or draining session takes this input in ``serve(_:session:drain:now:into:)``:
    /// every input but those `handle` answers in any state, and a failed session.
    private static func isSessionInput(_ input: WorkerInput) -> Bool {
        switch input {
        case .stopRequested, .ownerLoad, .fingerprintRead, .sessionFailed: false
        default: true
        }
    }

    /// Serves the input when the session is serving or draining; false in any other state.
    ///
    /// The session is moved out of `lifecycle` before it is changed, and put back by
    /// ``conclude(_:drain:reconnect:now:into:)``: changed while `lifecycle` still held it, every
    /// input (each REQUEST, each batch of slot results) copied the stages and the set of held ids.
    private mutating func serveInPlace(_ input: WorkerInput, now: ContinuousClock.Instant, into actions: inout [WorkerAction]) -> Bool {
        switch lifecycle {
        case .serving(var session):
            lifecycle = .idle
            var noDrain: Drain?
            serve(input, session: &session, drain: &noDrain, now: now, into: &actions)
        case .draining(var session, let drain):
            lifecycle = .idle
            var drain: Drain? = drain
            serve(input, session: &session, drain: &drain, now: now, into: &actions)
        default:
            return false
        }
        return true
    }

    // MARK: Topology and registration

    private mutating func askForTopology(now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        actions.append(.requestTopology)
        lifecycle = .fetchingTopology(deadline: now + Self.topologyTimeout)
    }

    private mutating func received(_ frames: [[UInt8]], now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        let broker = configuration.brokerEndpoint
        let reply: ClientMessage
        do {
            reply = try ClientMessage(frames: frames)
        } catch {
            actions.append(.notice(.unexpectedTopologyReply(broker: broker, reason: error.reason)))
            return backOff(now: now, into: &actions)
        }
        guard reply.service == "mmi.topology", reply.body.count == 2 else {
            actions.append(.notice(.unexpectedTopologyReply(broker: broker, reason: "not a topology reply")))
            return backOff(now: now, into: &actions)
        }
        guard reply.body[0] == Array("200".utf8) else {
            let status = String(decoding: reply.body[0], as: UTF8.self)
            actions.append(.notice(.unexpectedTopologyReply(broker: broker, reason: "status \(status)")))
            return backOff(now: now, into: &actions)
        }
        let topology: Topology
        do {
            topology = try JSONDecoder().decode(Topology.self, from: Data(reply.body[1]))
        } catch {
            actions.append(.notice(.unexpectedTopologyReply(broker: broker, reason: "\(error)")))
            return backOff(now: now, into: &actions)
        }
        if let only = configuration.stages {
            let unknown = only.subtracting(topology.stages.map(\.name)).sorted()
            if !unknown.isEmpty {
                let names = topology.stages.map(\.name).joined(separator: ", ")
                actions.append(.fail(RuntimeError(.unknownStage,
                    "--stages names \(unknown.map { "'\($0)'" }.joined(separator: ", ")), which pipeline \(topology.name) at \(broker) does not have; its stages are \(names)")))
                lifecycle = .stopped
                return
            }
        }
        // Stage files come only for the stages this worker would serve, and only into a cache.
        var manifest = configuration.stageFileCache == nil ? [:] : StageFiles.manifest(fromTopologyJSON: reply.body[1])
        if let only = configuration.stages { manifest = manifest.filter { only.contains($0.key) } }
        let files = Dictionary(manifest.values.joined().map { ($0.sha256, $0) }, uniquingKeysWith: { first, _ in first })
        guard !files.isEmpty else { return register(topology, manifest: [:], failures: [:], now: now, into: &actions) }
        let wanted = files.values.sorted { $0.sha256 < $1.sha256 }
        actions.append(.notice(.fetchingStageFiles(count: wanted.count, bytes: wanted.reduce(0) { $0 + $1.size })))
        actions.append(.fetchStageFiles(wanted))
        lifecycle = .fetchingFiles(FileFetch(
            topology: topology, manifest: manifest, waiting: Set(files.keys), deadline: now + Self.stageFilesTimeout))
    }

    /// A reply to `mmi.file`: content whose digest is right goes to the cache; anything else fails that file.
    private func receivedFile(_ frames: [[UInt8]], fetch: inout FileFetch, into actions: inout [WorkerAction]) {
        guard let message = try? ClientMessage(frames: frames), message.service == StageFiles.service,
              let reply = StageFileReply(body: message.body), fetch.waiting.contains(reply.sha256) else { return }
        guard let file = fetch.manifest.values.joined().first(where: { $0.sha256 == reply.sha256 }) else { return }
        switch reply.status {
        case .found where SHA256.hexDigest(reply.content) == reply.sha256:
            actions.append(.storeStageFile(file, content: reply.content))
        case .found:
            fetch.waiting.remove(reply.sha256)
            fetch.failures[reply.sha256] = "the content the broker sent does not match its SHA-256 \(reply.sha256)"
        case .notFound, .malformed:
            fetch.waiting.remove(reply.sha256)
            fetch.failures[reply.sha256] = "the broker does not serve it (status \(reply.status.rawValue))"
        }
    }

    private mutating func register(
        _ topology: Topology, manifest: [String: [StageFile]], failures: [String: String], now: ContinuousClock.Instant,
        into actions: inout [WorkerAction]
    ) {
        let ownerPolicy = topology.ownerPolicy == true
        // The broker sends environment names only; the values are this machine's (Docs/security.md).
        let topology = topology.withLocalEnvironment(configuration.stageEnvironment)
        let finals = Set(topology.terminalStages.map(\.name))
        // Only the chains the broker announced: a broker that runs none dispatches every stage itself.
        let chains = topology.chains ?? []
        var plans: [StagePlan] = []
        var unserved: [UnservedStage] = []
        // `stage`: the name the broker knows (a chain's head); `label`: what the log says.
        func skip(_ stage: String, _ label: String, _ reason: String) {
            actions.append(.notice(.notServing(stage: label, reason: reason)))
            unserved.append(UnservedStage(stage: stage, reason: reason))
        }
        for original in topology.stages {
            let chain = chains.first { $0.contains(original.name) }
            // A chain registers once, under its head, and runs all its members.
            if let chain, chain.first != original.name { continue }
            let originals = chain.map { names in names.compactMap { topology.stage(named: $0) } } ?? [original]
            if let only = configuration.stages, !originals.contains(where: { only.contains($0.name) }) { continue }
            let label = chain.map { "\(original.name) (chain \(ChainPlan.describe($0)))" } ?? original.name
            let files = originals.flatMap { manifest[$0.name] ?? [] }
            if let failed = files.first(where: { failures[$0.sha256] != nil }) {
                skip(original.name, label, "stage file '\(failed.path)' could not be fetched: \(failures[failed.sha256]!)")
                continue
            }
            // The broker's copy of each stage file, from the cache, whatever this machine has at that path.
            let members = originals.map { member in
                configuration.stageFileCache.map { $0.localizing(member, files: manifest[member.name] ?? []) } ?? member
            }
            let spec = members.first ?? original
            let unavailable = members.compactMap { member -> String? in
                if case .unavailable(let reason) = availability(member) { return reason }
                return nil
            }
            if let reason = unavailable.first {
                skip(original.name, label, reason)
                continue
            }
            let tail = members.last ?? spec
            var plan = Self.plan(for: spec, isFinal: finals.contains(tail.name), configuration: configuration, chain: members)
            if let chain { plan.capabilities["chain"] = chain.joined(separator: ",") }
            if let unmet = members.compactMap({ $0.requires.unmetReason(plan.capabilities) }).first {
                skip(original.name, label, unmet)
                continue
            }
            plans.append(plan)
            actions.append(.notice(.serving(stage: label, slots: plan.slots, credit: plan.credit)))
        }
        let aggregator = plans.contains(where: \.isFinal)
            ? configuration.aggregatorEndpoint ?? Self.reachable(topology.broker.aggregator, via: configuration.brokerEndpoint)
            : nil
        let registration = Registration(
            plans: plans, aggregator: aggregator, pipeline: topology.name,
            heartbeatInterval: topology.broker.heartbeatInterval, liveness: max(1, topology.broker.heartbeatLiveness),
            ownerPolicy: ownerPolicy)
        guard !unserved.isEmpty else { return open(registration, now: now, into: &actions) }
        // The broker hears why before the session opens, so an unserved stage is explained at once.
        actions.append(.reportUnserved(node: configuration.nodeID, unserved))
        lifecycle = .reporting(registration, deadline: now + Self.reportTimeout)
    }

    private mutating func open(_ registration: Registration, now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        let plans = registration.plans
        guard !plans.isEmpty else {
            actions.append(.notice(.servesNothing(pipeline: registration.pipeline)))
            return backOff(now: now, into: &actions)
        }
        // Served once: the next loss of the broker starts over from the shortest backoff.
        backoff = Self.firstBackoff
        actions.append(.openSession(plans, aggregator: registration.aggregator))
        let interval = registration.heartbeatInterval
        let session = Session(
            stages: plans.map { StageState(plan: $0, lastHeard: now, lastSent: now) },
            heartbeatInterval: interval, expiry: interval * registration.liveness, ownerPolicy: registration.ownerPolicy)
        lifecycle = .registering(session)
    }

    /// How this worker registers `spec`: slots, credit, batch, and where the handler runs.
    /// `chain`: a chain's members, head (`spec`) first; it runs cheaply only if every member does.
    static func plan(for spec: StageSpec, isFinal: Bool, configuration: WorkerConfiguration, chain: [StageSpec] = []) -> StagePlan {
        let slots = max(1, configuration.slots ?? slotCount(for: [spec] + chain, cores: configuration.cores))
        let cheap = ([spec] + chain).allSatisfy { StageHandlers.cost(of: $0) == .fast }
        let credit = spec.credit ?? slots * (cheap ? 128 : 4)
        // Cheap handlers take several waiting items at once and answer them in one message;
        // others one at a time, so no answer waits behind another item's work.
        let batch = max(1, min(credit, cheap ? 64 : slots))
        let capabilities = NodeInfo.capabilities(
            node: configuration.nodeID, labels: configuration.labels, credit: credit, batch: batch,
            measuringSpeed: configuration.measuresSpeed)
        var plan = StagePlan(
            spec: spec, chain: chain.count > 1 ? chain : [], isFinal: isFinal, slots: slots, credit: credit, batch: batch, capabilities: capabilities,
            runsInline: cheap && slots == 1, takeLimit: cheap ? 16 : 1)
        // A `credit` the topology sets stays as it is; the default above is where adapting starts (its floor).
        plan.adaptiveCredit = spec.credit == nil
        return plan
    }

    /// Slots from the stages' rule (a chain's members share `replicas`): one per core when any
    /// member is an exec stage without `replicas`. `--slots` comes before this, in ``plan(for:isFinal:configuration:chain:)``.
    static func slotCount(for members: [StageSpec], cores: Int) -> Int {
        let rules = members.map(\.slotRule)
        if rules.contains(.perCore) { return max(1, cores) }
        if case .fixed(let count) = rules.first { return count }
        return 1
    }

    /// An endpoint the broker advertised as bound on all interfaces, made reachable with the broker's host.
    static func reachable(_ endpoint: String, via broker: String) -> String {
        guard let advertised = try? Endpoint(parsing: endpoint, use: .bind),
              let brokerHost = (try? Endpoint(parsing: broker))?.host else { return endpoint }
        return advertised.reachable(via: brokerHost).description
    }

    // MARK: Owner policy

    /// A measurement of the rest of the machine's load: on a change, tell the broker (a capabilities
    /// refresh on every stage) and, when yielding, take back the jobs no slot has started.
    private mutating func measured(_ load: Double, now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        ownerLoad = load
        guard var policy = owner else { return }
        let change = policy.observe(otherLoad: load, at: now)
        owner = policy
        guard let change else { return }
        let yielding = change == .yield
        actions.append(.notice(yielding ? .yielding(load: load, threshold: policy.threshold) : .resumed(load: load, threshold: policy.threshold)))
        // Registering or backing off: the next READY says it. Draining: nothing new is started anyway.
        guard case .serving(var session) = lifecycle else { return }
        guard session.ownerPolicy else {
            if yielding { actions.append(.notice(.ownerPolicyUnsupported(broker: configuration.brokerEndpoint))) }
            return
        }
        for position in session.stages.indices where !session.stages[position].disconnected {
            actions.append(.send(stage: position, .refresh(capabilities: Capabilities(ownerCapabilities()))))
            session.stages[position].lastSent = now
            if yielding, !session.stages[position].plan.runsInline { actions.append(.withdrawJobs(stage: position)) }
        }
        lifecycle = .serving(session)
    }

    // MARK: Fingerprint refresh

    /// How far `load.1` moves before the broker hears of it.
    static let loadStep = 0.1
    /// How far available memory (of the total) or free disk (of what it was) moves before the broker hears of it.
    static let memoryFraction = 0.01

    /// A new reading of the machine's changing facts: when it moved far enough from what the broker
    /// last heard, one refresh with only the dynamic properties, on the first stage connection (the
    /// broker applies them to every worker of the node, Docs/protocol.md 7.6). A broker that did not
    /// announce `ownerPolicy` gets none; registering, backing off or draining, the next READY says it.
    private mutating func read(_ values: [String: String], now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        let fresh = values.filter { Self.isFingerprintValue($0.key) }
        dynamicValues = fresh
        guard case .serving(var session) = lifecycle, session.ownerPolicy,
              let position = session.stages.indices.first(where: { !session.stages[$0].disconnected }) else { return }
        let total = session.stages[position].plan.capabilities["memory"].flatMap(Double.init)
        guard Self.movedEnough(from: session.announced, to: fresh, memoryTotal: total) else { return }
        let refresh = Capabilities(fresh).bounded(toBytes: NodeInfo.capabilitiesLimit, valueBytes: NodeInfo.capabilityValueLimit).capabilities
        actions.append(.send(stage: position, .refresh(capabilities: refresh)))
        session.stages[position].lastSent = now
        // A property a refresh leaves out keeps its value at the broker.
        session.announced.merge(refresh.values) { $1 }
        lifecycle = .serving(session)
    }

    /// Whether `fresh` differs from `announced` enough to be worth a refresh: `load.1` by
    /// ``loadStep``, available memory by ``memoryFraction`` of `memoryTotal`, free disk by that
    /// fraction of its last value, any GPU figure at all, or a property the broker has not heard
    /// yet. `load.5` and `load.15` follow `load.1` and ride along with it; a property the reading
    /// lacks (a figure that could not be read) keeps its value at the broker and counts as unchanged.
    static func movedEnough(from announced: [String: String], to fresh: [String: String], memoryTotal: Double?) -> Bool {
        func number(_ values: [String: String], _ name: String) -> Double? { values[name].flatMap(Double.init) }
        for (name, after) in fresh where name != "load.5" && name != "load.15" {
            guard let before = announced[name] else { return true }
            guard before != after else { continue }
            let old = number(announced, name), new = number(fresh, name)
            switch name {
            case "load.1":
                if let old, let new, abs(new - old) < loadStep - 1e-9 { continue }
            case "memory.available":
                if let old, let new, abs(new - old) < memoryFraction * (memoryTotal ?? old) { continue }
            case "disk.free":
                if let old, let new, abs(new - old) < memoryFraction * old { continue }
            default:
                break
            }
            return true
        }
        return false
    }

    /// A dynamic property of the fingerprint (not one of the owner policy's, which it sends itself).
    private static func isFingerprintValue(_ name: String) -> Bool {
        Fingerprint.isDynamicCapability(name) && name != "yielding" && name != "owner.load"
    }

    /// The fingerprint's dynamic properties among `capabilities`.
    private static func dynamicPart(of capabilities: Capabilities) -> [String: String] {
        capabilities.values.filter { isFingerprintValue($0.key) }
    }

    /// The refresh properties of the owner policy (Docs/protocol.md, 7.6).
    private func ownerCapabilities() -> [String: String] {
        ["yielding": owner?.isYielding == true ? "true" : "false", "owner.load": String(format: "%.2f", ownerLoad)]
    }

    private static func returned(_ item: RequestBatch.Item) -> ItemOutcome {
        ItemOutcome(id: item.header.id, epoch: item.header.epoch, attempt: item.header.attempt, status: .returned)
    }

    // MARK: Serving and draining

    private mutating func serve(
        _ input: WorkerInput, session: inout Session, drain: inout Drain?, now: ContinuousClock.Instant,
        into actions: inout [WorkerAction]
    ) {
        var reconnect = false
        switch input {
        case .brokerMessage(let position, let message) where session.stages.indices.contains(position):
            guard !session.stages[position].disconnected else { break }
            session.stages[position].lastHeard = now
            switch message {
            case .request(let client, let body):
                let batch: RequestBatch
                do {
                    batch = try RequestBatch(frames: body)
                } catch {
                    actions.append(.notice(.malformedRequest(reason: error.reason)))
                    break
                }
                if drain != nil {
                    // Not started: the DISCONNECT at the end of the drain gives them back without using an attempt.
                    drain?.handedBack += batch.items.count
                    break
                }
                if session.ownerPolicy, owner?.isYielding == true {
                    // Sent before the broker heard this worker yields: straight back, unstarted.
                    session.stages[position].outcomes += batch.items.map(Self.returned)
                    break
                }
                if client == MDP.clientItemsAddress {
                    session.stages[position].clientItems.formUnion(batch.items.lazy.map { $0.header.id })
                }
                session.stages[position].held.formUnion(batch.items.lazy.map { $0.header.id })
                actions.append(.runJobs(stage: position, batch.items.map { SlotJob(stage: position, item: $0) }))
            case .disconnect:
                session.stages[position].disconnected = true
                if drain == nil {
                    actions.append(.notice(.brokerDisconnected(stage: session.stages[position].plan.spec.name)))
                    reconnect = true
                }
            case .refresh(let capabilities):
                // The broker's echo of a probe (Docs/protocol.md 7.7).
                if let probe = capabilities.probe { session.stages[position].creditController?.echoed(probe, at: now) }
            case .heartbeat, .ready, .reply:
                break
            }
        case .malformedBrokerMessage(let position) where session.stages.indices.contains(position):
            session.stages[position].lastHeard = now
            actions.append(.notice(.malformedMessage))
        case .slotResults(let position, let outcomes) where session.stages.indices.contains(position):
            for outcome in outcomes { record(outcome, in: &session.stages[position]) }
        case .jobsWithdrawn(let position, let jobs) where session.stages.indices.contains(position):
            var returned = 0
            for job in jobs where !session.stages[position].disconnected && session.stages[position].held.remove(job.item.header.id) {
                session.stages[position].clientItems.remove(job.item.header.id)
                session.stages[position].outcomes.append(Self.returned(job.item))
                returned += 1
            }
            if returned > 0 { actions.append(.notice(.returnedToBroker(items: returned))) }
        case .aggregatorAccepted:
            session.aggregatorPending = max(0, session.aggregatorPending - 1)
        case .tick:
            for position in session.stages.indices where !session.stages[position].disconnected {
                if now - session.stages[position].lastHeard >= session.expiry {
                    actions.append(.notice(.brokerSilent(expiry: session.expiry)))
                    reconnect = true
                    break
                }
                if drain == nil { adaptCredit(&session.stages[position], position: position, now: now, into: &actions) }
                if now - session.stages[position].lastSent >= session.heartbeatInterval {
                    actions.append(.send(stage: position, .heartbeat))
                    session.stages[position].lastSent = now
                }
            }
        default:
            break
        }
        if !reconnect { flush(&session, drain: &drain, now: now, into: &actions) }
        conclude(session, drain: drain, reconnect: reconnect, now: now, into: &actions)
    }

    /// Sets the next lifecycle once an input has been applied: reconnect, go on serving, or move the drain on.
    private mutating func conclude(
        _ session: Session, drain: Drain?, reconnect: Bool, now: ContinuousClock.Instant, into actions: inout [WorkerAction]
    ) {
        var session = session
        guard let drain else {
            if reconnect {
                backOff(now: now, into: &actions)
            } else {
                lifecycle = .serving(session)
            }
            return
        }
        if reconnect {
            // The broker is gone: there is nobody left to answer, nor to hand the items back to.
            return finish(into: &actions)
        }
        if now >= drain.deadline {
            actions.append(.notice(.graceExpired(unfinished: Self.unfinished(session), handedBack: drain.handedBack)))
            disconnectAll(&session, into: &actions)
            return finish(into: &actions)
        }
        // A stage says goodbye once it owes nothing. A final stage waits one heartbeat interval after
        // its last reply, so the aggregator's acks reach the broker before the DISCONNECT: the broker
        // sends again the final items it holds unconfirmed when their worker leaves.
        for position in session.stages.indices where !session.stages[position].disconnected {
            guard Self.owesNothing(session.stages[position], session) else { continue }
            if let goodbye = Self.goodbyeTime(session.stages[position], session), now < goodbye { continue }
            actions.append(.send(stage: position, .disconnect))
            session.stages[position].disconnected = true
        }
        if session.stages.allSatisfy(\.disconnected) {
            actions.append(.notice(.drained(finished: drain.finished, handedBack: drain.handedBack)))
            return finish(into: &actions)
        }
        lifecycle = .draining(session, drain)
    }

    private static func owesNothing(_ stage: StageState, _ session: Session) -> Bool {
        stage.held.isEmpty && stage.outcomes.isEmpty && stage.aggregated.isEmpty && session.aggregatorPending == 0
    }

    /// When a drained final stage may say goodbye; nil: at once.
    private static func goodbyeTime(_ stage: StageState, _ session: Session) -> ContinuousClock.Instant? {
        guard stage.plan.isFinal, let last = stage.lastReplyAt else { return nil }
        return last + session.heartbeatInterval
    }

    private static func unfinished(_ session: Session) -> Int {
        session.stages.reduce(0) { $0 + ($1.disconnected ? 0 : $1.held.count) }
    }

    /// Sends what the stage's credit controller has due: a probe, a new credit, or both in one refresh
    /// (which is also the stage's heartbeat).
    private func adaptCredit(_ stage: inout StageState, position: Int, now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        guard var controller = stage.creditController else { return }
        let step = controller.advance(to: now)
        stage.creditController = controller
        guard step.probe != nil || step.credit != nil else { return }
        actions.append(.send(stage: position, .refresh(capabilities: .creditRefresh(
            probe: step.probe, credit: step.credit, roundTrip: controller.roundTrip))))
        stage.lastSent = now
        if let credit = step.credit, let roundTrip = controller.roundTrip {
            actions.append(.notice(.creditChanged(stage: stage.plan.spec.name, credit: credit, roundTrip: roundTrip, rate: controller.rate ?? 0)))
        }
    }

    /// Files an item's outcome for the next flush: a final stage's outputs go to the aggregator,
    /// announced in the REPLY; a client's items and everything else are answered in the REPLY.
    private func record(_ outcome: ItemOutcome, in stage: inout StageState) {
        guard !stage.disconnected else { return }
        stage.held.remove(outcome.id)
        stage.creditController?.finished(1)
        let fromClient = stage.clientItems.remove(outcome.id)
        if stage.plan.isFinal, !fromClient, case .completed(let outputs) = outcome.status {
            stage.aggregated.append(outcome)
            stage.outcomes.append(
                ItemOutcome(id: outcome.id, epoch: outcome.epoch, attempt: outcome.attempt, status: .deliveredToAggregator(count: outputs.count)))
        } else {
            stage.outcomes.append(outcome)
        }
    }

    /// Final outputs go to the aggregator first; the replies that announce them only once every push has left.
    private func flush(_ session: inout Session, drain: inout Drain?, now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        for position in session.stages.indices where !session.stages[position].aggregated.isEmpty {
            actions.append(.pushToAggregator(ReplyBatch(outcomes: session.stages[position].aggregated)))
            session.stages[position].aggregated.removeAll(keepingCapacity: true)
            session.aggregatorPending += 1
        }
        guard session.aggregatorPending == 0 else { return }
        for position in session.stages.indices where !session.stages[position].outcomes.isEmpty {
            let outcomes = session.stages[position].outcomes
            session.stages[position].outcomes.removeAll(keepingCapacity: true)
            actions.append(.send(stage: position, .reply(client: [], body: ReplyBatch(outcomes: outcomes).frames)))
            session.stages[position].lastSent = now
            session.stages[position].lastReplyAt = now
            drain?.finished += outcomes.count
        }
    }

    // MARK: Stopping

    private mutating func stop(immediately: Bool, now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        switch lifecycle {
        case .serving(var session):
            if immediately || configuration.stopGrace <= .zero {
                actions.append(.notice(.handedBack(items: Self.unfinished(session))))
                disconnectAll(&session, into: &actions)
                return finish(into: &actions)
            }
            actions.append(.notice(.draining(items: Self.unfinished(session), grace: configuration.stopGrace)))
            // Every stage that holds nothing says goodbye at once; the others when their items are answered.
            conclude(session, drain: Drain(deadline: now + configuration.stopGrace), reconnect: false, now: now, into: &actions)
        case .draining(var session, let drain):
            guard immediately else { return }
            actions.append(.notice(.graceExpired(unfinished: Self.unfinished(session), handedBack: drain.handedBack)))
            disconnectAll(&session, into: &actions)
            finish(into: &actions)
        case .idle, .fetchingTopology, .fetchingFiles, .reporting, .registering, .backingOff:
            finish(into: &actions)
        case .stopped:
            break
        }
    }

    private func disconnectAll(_ session: inout Session, into actions: inout [WorkerAction]) {
        for position in session.stages.indices where !session.stages[position].disconnected {
            actions.append(.send(stage: position, .disconnect))
            session.stages[position].disconnected = true
        }
    }

    private mutating func finish(into actions: inout [WorkerAction]) {
        actions.append(.finish)
        lifecycle = .stopped
    }

    private mutating func backOff(now: ContinuousClock.Instant, into actions: inout [WorkerAction]) {
        actions.append(.reconnect(after: backoff))
        lifecycle = .backingOff(until: now + backoff)
        backoff = min(backoff * 2, Self.longestBackoff)
    }

    // MARK: Time

    /// Asks for a tick at the next instant something is due, when that instant changed (or after every tick).
    private mutating func schedule(now: ContinuousClock.Instant, force: Bool, into actions: inout [WorkerAction]) {
        let next: ContinuousClock.Instant?
        switch lifecycle {
        case .idle, .stopped, .registering: next = nil
        case .fetchingTopology(let deadline): next = deadline
        case .fetchingFiles(let fetch): next = fetch.deadline
        case .reporting(_, let deadline): next = deadline
        case .backingOff(let until): next = until
        case .serving(let session): next = Self.nextDue(session, drain: nil, now: now)
        case .draining(let session, let drain): next = Self.nextDue(session, drain: drain, now: now)
        }
        guard let next, force || next != scheduled else { return }
        scheduled = next
        actions.append(.scheduleTick(at: next))
    }

    private static func nextDue(_ session: Session, drain: Drain?, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        // Asked after every input: by index and without an array of instants, so no stage state is
        // copied (a stage's held ids and outcomes retained and released) and nothing is allocated.
        var next = drain?.deadline
        func consider(_ instant: ContinuousClock.Instant) { next = min(next ?? instant, instant) }
        for index in session.stages.indices where !session.stages[index].disconnected {
            consider(session.stages[index].lastSent + session.heartbeatInterval)
            consider(session.stages[index].lastHeard + session.expiry)
            if drain == nil, let due = session.stages[index].creditController?.nextDue { consider(due) }
            // A goodbye time is only due once the stage owes nothing (else it would be due again and again).
            if drain != nil, owesNothing(session.stages[index], session), let goodbye = goodbyeTime(session.stages[index], session),
               goodbye > now {
                consider(goodbye)
            }
        }
        return next
    }
}
