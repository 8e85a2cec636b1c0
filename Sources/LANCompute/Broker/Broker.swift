// The broker: one thread, one zmq_poll loop over the dispatch ROUTER, the source, and the aggregator.

import Foundation
import Histogram
import Logging
import Synchronization
import ZeroMQ

/// Everything a broker needs to run one pipeline.
public struct BrokerConfiguration: Sendable {
    /// The pipeline, with file paths already resolved.
    public var topology: Topology
    /// Where workers and MDP clients connect (ROUTER).
    public var dispatchEndpoint: String
    /// Where final outputs are PUSHed by workers (the aggregator's PULL).
    public var aggregatorEndpoint: String
    /// The PUB endpoint of the events and metrics feed; nil: no feed.
    public var eventsEndpoint: String?
    /// Whether failing to bind the events endpoint is an error (broker) or a warning (run).
    public var eventsRequired: Bool
    /// Where dead-lettered items are written (JSON lines); nil: next to the sink.
    public var deadLetterPath: String?
    /// How often a metrics snapshot is published.
    public var metricsInterval: Duration
    /// Serve the dashboard, /metrics (Prometheus text) and /healthz at HOST:PORT (`--http`); nil: off.
    public var metricsHTTP: String?
    /// After SIGINT/SIGTERM, how long in-flight work may drain.
    public var gracePeriod: Duration
    /// How long a final-stage item may wait for the aggregator's ack before it is sent again.
    public var ackTimeout: Duration
    /// When set, the dispatch ROUTER and the aggregator's PULL also bind `inproc://NAME-dispatch` and
    /// `inproc://NAME-aggregator`, for workers in the same process and context (``LocalCluster``).
    public var inprocName: String?
    /// The largest frame a peer may send to the broker's sockets; a larger one drops that peer's
    /// connection (libzmq's `ZMQ_MAXMSGSIZE`), so no peer can make the broker allocate without bound.
    public var maxFrameSize: Int64 = 64 * 1024 * 1024
    /// The largest item acknowledged intake takes into the pipeline; a larger one is dead-lettered
    /// (and the producer told so in the ack) instead of processed.
    public var maxItemSize: Int64 = 64 * 1024 * 1024
    /// What a worker may hold whatever it announces: the credit cap and the stall timeout.
    public var workerLimits = WorkerLimits()
    /// Allow binding to addresses the network can reach without encryption; otherwise such a bind
    /// fails with LC2005 (``SocketFactory``).
    public var insecure = false
    /// The broker's keys: with them every socket that binds serves CURVE, and only the keys of
    /// authorized_keys get in, each where its role may go (Docs/security.md). Nil: no keys.
    public var security: BrokerSecurity?
    /// Who may read `--http`: open, or only with the token (`--http-token`, made up when keys are set).
    public var httpAccess: DashboardAccess = .open
    /// The journal (state directory, fsync policy) a crashed run resumes from; nil: none, and a
    /// killed broker loses what it held in memory. See Docs/architecture.md, "The journal".
    public var journal: JournalConfiguration?
    /// The topology file's directory: the files under it that exec commands name are served to
    /// workers on `mmi.file` (Docs/cluster.md, "Stage files"). Nil: none are shipped.
    public var topologyDirectory: String?

    public init(
        topology: Topology, dispatchEndpoint: String? = nil, aggregatorEndpoint: String? = nil,
        eventsEndpoint: String? = nil, eventsRequired: Bool = true, deadLetterPath: String? = nil,
        metricsInterval: Duration = .seconds(1), metricsHTTP: String? = nil, gracePeriod: Duration = .seconds(10),
        ackTimeout: Duration = .seconds(30)
    ) {
        self.topology = topology
        self.dispatchEndpoint = dispatchEndpoint ?? topology.broker.bind
        self.aggregatorEndpoint = aggregatorEndpoint ?? topology.broker.aggregator
        self.eventsEndpoint = eventsEndpoint
        self.eventsRequired = eventsRequired
        self.deadLetterPath = deadLetterPath
        self.metricsInterval = metricsInterval
        self.metricsHTTP = metricsHTTP
        self.gracePeriod = gracePeriod
        self.ackTimeout = ackTimeout
    }

    /// The dead-letter file: the given path, or `<sink>.dead-letter.jsonl` beside a file sink,
    /// or `<pipeline>.dead-letter.jsonl` in the working directory.
    public var resolvedDeadLetterPath: String {
        if let deadLetterPath { return deadLetterPath }
        if case .file(let path) = topology.sink.kind {
            let url = URL(fileURLWithPath: path)
            let base = url.deletingPathExtension().lastPathComponent
            return url.deletingLastPathComponent().appendingPathComponent("\(base).dead-letter.jsonl").path
        }
        return "\(topology.name).dead-letter.jsonl"
    }
}

/// The `mmi.topology` JSON: the topology's own keys, and `stageFiles` when the broker ships any.
struct TopologyAnswer: Encodable {
    var topology: Topology
    var stageFiles: [String: [StageFile]]

    private enum CodingKeys: String, CodingKey { case stageFiles }

    func encode(to encoder: any Encoder) throws {
        try topology.encode(to: encoder)
        guard !stageFiles.isEmpty else { return }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(stageFiles, forKey: .stageFiles)
    }
}

/// The endpoints a running broker actually bound (ports resolved).
public struct BrokerEndpoints: Sendable, Equatable {
    public var dispatch: String
    public var aggregator: String
    public var events: String?
    public var source: String?
    public var metricsHTTP: String?
}

/// Where a run stands, reported a few times a second.
public struct RunProgress: Sendable {
    /// Items read from the source so far.
    public var read: Int
    /// Items the source holds, when known.
    public var total: Int?
    /// Source items the first stage has finished with (completed or dead-lettered).
    public var processed: Int
    /// Outputs the aggregator has confirmed in the sink.
    public var inSink: Int
    public var deadLettered: Int
    public var elapsed: Duration
}

/// What a run did, reported when it ends.
public struct RunSummary: Sendable, Codable, Equatable {
    public var pipeline: String
    public var itemsIn: Int
    public var itemsOut: Int
    public var deadLettered: Int
    /// Items still unfinished when the run stopped (only after an interruption).
    public var unfinished: Int
    public var wallSeconds: Double
    public var itemsPerSecond: Double
    /// End-to-end latency, from entering the pipeline to being in the sink.
    public var latencyP50Milliseconds: Double
    public var latencyP99Milliseconds: Double
    public var protocolErrors: Int
    /// Messages from workers the broker had already let go of and redelivered for (ignored; not errors).
    public var lateMessages: Int = 0
    public var interrupted: Bool
    public var deadLetterPath: String?

    /// A finite source was not read to its end (the run was stopped early).
    public var inputLeft: Bool = false
    /// The run resumed from the journal of an earlier run that did not finish.
    public var resumed: Bool = false
    /// Source items an earlier run finished, not processed again by this one.
    public var alreadyDone: Int = 0

    /// Exit status for the CLI: 0 when the whole input was read and everything reached the sink, 1 otherwise.
    /// (A `pull` source has no end: stopping it is how its run ends.)
    public var exitCode: Int32 { !inputLeft && deadLettered == 0 && unfinished == 0 ? 0 : 1 }
}

/// Runs one pipeline: dispatches items to workers, tracks them, and ends when all are in the sink.
public final class Broker: Sendable {
    public let configuration: BrokerConfiguration
    let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let reloadRequested = Atomic<Bool>(false)
    private let drainCutShort = Atomic<Bool>(false)

    let sharedContext: Context?

    /// `context`: the ZeroMQ context to use (needed for inproc workers); nil: a context of its own.
    public init(configuration: BrokerConfiguration, logger: Logger = Logger(label: "lancompute.broker"), context: Context? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.sharedContext = context
    }

    /// Asks the broker to stop taking new items and drain what is in flight (thread-safe).
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    /// Ends the drain at once (thread-safe): the sink is written, and what is unfinished is
    /// dead-lettered as stopped, as when the grace period runs out.
    public func stopDraining() {
        stopRequested.store(true, ordering: .relaxed)
        drainCutShort.store(true, ordering: .relaxed)
    }

    /// Runs the broker on the calling thread until the source is exhausted and every item is
    /// in the sink or dead-lettered, or until ``stop()`` and the grace period.
    public func run(
        onReady: @Sendable (BrokerEndpoints) -> Void = { _ in },
        onProgress: (@Sendable (RunProgress) -> Void)? = nil
    ) throws(BrokerError) -> RunSummary {
        let context: Context
        if let sharedContext {
            context = sharedContext
        } else {
            do { context = try Context() } catch { throw BrokerError(.brokerSetup, "cannot create a ZeroMQ context: \(error)") }
        }
        // Ends the source reader's blocked send, if the run stopped before the source did.
        defer { if sharedContext == nil { context.shutdown() } }
        let loop = try BrokerLoop(broker: self, context: context)
        return try loop.run(onReady: onReady, onProgress: onProgress)
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }
    var isDrainCutShort: Bool { drainCutShort.load(ordering: .relaxed) }

    /// Asks the broker to read authorized_keys again (thread-safe; the CLI calls it on SIGHUP). The
    /// broker also notices a changed file by itself within a second.
    public func reloadKeys() {
        reloadRequested.store(true, ordering: .relaxed)
    }

    /// Whether a reload was asked for since the last call.
    func takeReloadRequest() -> Bool { reloadRequested.exchange(false, ordering: .relaxed) }
}

/// Where a broker is in its life; a case holds what belongs to that phase.
enum BrokerLifecycle {
    /// Sockets bound, the aggregator and the source starting.
    case starting
    /// Taking items from the source and dispatching them.
    case running
    /// No more intake: what is in flight may finish until `since` + the grace period.
    case draining(since: ContinuousClock.Instant, cause: DrainCause)
    /// The loop is done; the summary is being written.
    case stopped

    enum DrainCause { case stopRequested, sourceFailed }

    var isRunning: Bool {
        if case .running = self { return true }
        return false
    }
}

/// The broker's shell: one run of the poll loop. It decodes frames through `Wire/`, feeds the
/// core, and carries out the actions the core returns. Lives on the broker thread only.
final class BrokerLoop {
    let broker: Broker
    let configuration: BrokerConfiguration
    let logger: Logger
    let context: Context
    let core: BrokerCore
    let sockets: SocketFactory
    let router: Socket
    let source: Socket
    let instance = UUID().uuidString
    var endpoints: BrokerEndpoints
    /// Started by `run`; joined by `finish`, or when the loop is released after a failure.
    var aggregator: ActorThread<AggregatorCommand, AggregatorEvent>?
    var sourceReader: ActorThread<Never, Never>?
    /// What the source reader hands over; nil for a `pull` source, which the broker reads itself.
    var sourceHandoff: SourceHandoff?
    /// The aggregator's end of the pipe, polled with the other sockets.
    var control: Socket { aggregator!.socket }

    var read = 0
    var sourceTotal: Int?
    var sourceEnded = false
    var sourceFailure: String?
    var inSink = 0
    var protocolErrors = 0
    var protocolLog = PeerLogThrottle()
    /// Messages from workers the broker had already let go of (late replies after a redelivery).
    var lateMessages = 0
    /// Outcomes for items of another run (a worker kept them across a broker restart): refused.
    var foreignOutcomes = 0
    var deadLetteredTotal = 0
    var lifecycle = BrokerLifecycle.starting
    /// When the core wants its next tick.
    var nextTick = ContinuousClock.now
    /// Inputs gathered while draining a socket, handed to the core in one go so it dispatches once.
    var gathered: [BrokerInput] = []
    /// Final outputs to forward to the aggregator, sent as one message after each round of actions.
    var aggregatorOutbox: [ItemOutcome] = []
    var clientRequests: UInt64 = 0
    /// Producers of acknowledged intake and the batches of theirs already accepted.
    var intakeLedger = IntakeLedger()
    var deadLetterFile: UnsafeMutablePointer<FILE>?
    var latency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    let started = ContinuousClock.now
    let telemetry: Telemetry
    /// The ZAP handler, when the broker has keys; started before any CURVE server socket.
    var zap: ActorThread<ZAPCommand, ZAPEvent>?
    /// The keys in force (nil: no keys); replaced on reload.
    var authorizedKeys: AuthorizedKeys?
    var keyWatcher: FileChangeWatcher?
    /// The ROUTER's handshake failures (plaintext peers, wrong server keys) when the broker has keys.
    var routerMonitor: SocketMonitor?
    /// Peers refused: by the ZAP handler, by a failed handshake, or by a message their role may not send.
    var unauthorized = 0
    // Journal (Journal/BrokerLoop+Journal.swift): the loop only appends to it, and flushes it once per iteration.
    var journal: BrokerJournal?
    /// Admissions held until the journal has them (sinks that cannot be cut back: stdout, push),
    /// gathered in this loop iteration: ``commitJournal(now:)`` writes their records and tags them.
    var heldAdmissions: [AggregatorCommand] = []
    /// Effects waiting for the write that carried their records to be released (on disk, with
    /// `--fsync batch`), in the order they arose.
    var heldForDisk: [(generation: UInt64, effect: HeldEffect)] = []
    /// Source items the journal says an earlier run finished, skipped at intake.
    var alreadyDone = 0
    /// Added to the ids a stdin source reader gives, so a resumed run's new lines follow the old ones.
    var sourceIDBase: UInt64 = 0
    /// The journal could not be written where the loop cannot throw: the run stops with it.
    var journalFailure: RuntimeError?
    /// The stage files workers fetch on `mmi.file`, read once at start.
    let stageFiles: StageFileStore

    init(broker: Broker, context: Context) throws(BrokerError) {
        self.broker = broker
        self.configuration = broker.configuration
        self.logger = broker.logger
        self.context = context
        if let security = configuration.security {
            // Before the first CURVE server socket exists: no handshake may happen without the handler.
            do {
                zap = try ZAPHandler(context: context, keys: security.authorizedKeys, logger: broker.logger).start()
            } catch {
                throw BrokerError("LC2000: cannot start the ZAP handler on \(ZAPHandler.endpoint): \(error); is another broker running in this process?")
            }
            authorizedKeys = security.authorizedKeys
            keyWatcher = FileChangeWatcher(path: security.authorizedKeysPath)
        }
        // A new epoch for every run, so outputs a worker still holds from a run before a restart are refused.
        self.core = BrokerCore(topology: configuration.topology, epoch: UInt32.random(in: 1...UInt32.max), ackTimeout: configuration.ackTimeout,
                               limits: configuration.workerLimits)
        sockets = SocketFactory(context: context, insecure: configuration.insecure,
                                curve: configuration.security.map { CurveSetup(server: $0.keyPair) })
        do {
            router = try sockets.socket(.dispatch(maxMessageSize: configuration.maxFrameSize))
            var fromReader = true
            if case .pull = configuration.topology.source.kind { fromReader = false }
            source = try sockets.socket(.source(maxMessageSize: configuration.maxFrameSize, fromReader: fromReader))
            if configuration.security != nil {
                routerMonitor = try router.monitor(events: [.handshakeFailedProtocol, .handshakeFailedNoDetail])
            }
        } catch {
            throw BrokerError(.brokerSetup, "cannot create the broker's sockets: \(error)")
        }
        do {
            try sockets.bind(router, as: .dispatch(maxMessageSize: configuration.maxFrameSize), to: configuration.dispatchEndpoint)
        } catch .failed(let error) {
            throw BrokerError(.dispatchBind, "cannot bind the dispatch endpoint \(configuration.dispatchEndpoint): \(error.code.message) (\(error.code.cName)); is another broker running there? Choose another with --bind")
        } catch {
            throw BrokerError(error.description)
        }
        // Read back before the inproc bind below, which would become the "last" endpoint.
        endpoints = BrokerEndpoints(dispatch: (try? router.lastEndpoint) ?? configuration.dispatchEndpoint, aggregator: configuration.aggregatorEndpoint)
        if let name = configuration.inprocName {
            do { try router.bind("inproc://\(name)-dispatch") } catch { throw BrokerError(.brokerSetup, "cannot bind inproc://\(name)-dispatch: \(error)") }
        }
        telemetry = Telemetry(topology: configuration.topology, logger: logger)
        let topology = configuration.topology
        stageFiles = configuration.topologyDirectory.map { StageFileStore(topology: topology, directory: $0) } ?? StageFileStore()
    }

    deinit {
        routerMonitor?.stop()
        // Last: the server sockets it answers for are closed with the loop.
        zap?.stop()
    }

    func run(onReady: @Sendable (BrokerEndpoints) -> Void, onProgress: (@Sendable (RunProgress) -> Void)?) throws(BrokerError) -> RunSummary {
        try checkOutputPaths()
        try openJournal()
        try startAggregator()
        try startSource()
        do {
            endpoints.events = try telemetry.start(configuration: configuration, context: context)
        } catch {
            // An exposure refusal is never a mere warning: `run` must not serve HTTP where it was refused.
            if configuration.eventsRequired || error.code == .unencryptedExposure { throw error }
            logger.warning("\(error); running without the events feed")
        }
        endpoints.metricsHTTP = telemetry.metricsHTTPEndpoint
        onReady(endpoints)
        logger.info("broker for pipeline \(configuration.topology.name) listening on \(endpoints.dispatch)")
        for warning in stageFiles.warnings { logger.warning("\(warning)") }
        for (stage, files) in stageFiles.manifest.sorted(by: { $0.key < $1.key }) {
            logger.info("stage \(stage) ships \(files.map { "\($0.path) (\($0.size) bytes)" }.joined(separator: ", ")) to its workers")
        }
        telemetry.brokerStarted(endpoints: endpoints)
        let exposed = exposedEndpoints
        if !exposed.isEmpty {
            logger.warning("--insecure: \(exposed.joined(separator: ", ")) reachable from the network without encryption or authentication; anyone there can register as a worker, read every item and inject results")
            telemetry.insecure(endpoints: exposed)
        }
        if journal?.isResume == true { keepDeadLettersOfEarlierRuns() } else { removeStaleDeadLetterFile() }

        let poller = Poller()
        let routerIndex = poller.add(router)
        let controlIndex = poller.add(control)
        let sourceIndex = poller.add(source)
        let feedIndex = telemetry.feedSocket.map { poller.add($0) }
        let zapIndex = zap.map { poller.add($0.socket) }
        let monitorIndex = routerMonitor.map { poller.add($0.socket) }
        let journalIndex = journal?.syncSocket.map { poller.add($0) }
        var lastKeyCheck = ContinuousClock.now
        var lastInsecureEvent = ContinuousClock.now

        var lastProgress = ContinuousClock.now
        var lastMetrics = ContinuousClock.now
        var heapTrim = HeapTrim()
        let queueLimit = max(1, configuration.topology.broker.queueLimit)
        var backpressure = false
        lifecycle = .running
        perform(core.handle(.tick, at: .now))
        try resumeFromJournal(now: .now)

        while true {
            let now = ContinuousClock.now
            if lifecycle.isRunning && (broker.isStopRequested || sourceFailure != nil) {
                lifecycle = .draining(since: now, cause: sourceFailure != nil ? .sourceFailed : .stopRequested)
                logger.notice(sourceFailure != nil ? "source failed; finishing the items read before it" : "stop requested; draining in-flight work")
            }
            let intakeOpen = lifecycle.isRunning && !sourceEnded
            let room = core.queuedTotal < queueLimit
            if intakeOpen && room == backpressure {
                backpressure = !room
                for stage in core.entryStages {
                    telemetry.backpressure(stage: core.stageNames[stage], queued: core.queuedTotal, limit: queueLimit, active: backpressure)
                }
            }
            poller.setEvents(intakeOpen && room ? .in : [], at: sourceIndex)

            _ = try? poller.poll(timeout: max(.zero, min(nextTick - now, .milliseconds(100))))
            let afterPoll = ContinuousClock.now

            if poller.isReadable(routerIndex) { drainRouter(now: afterPoll) }
            if poller.isReadable(controlIndex) { try drainControl(now: afterPoll) }
            if poller.isReadable(sourceIndex) { drainSource(now: afterPoll, limit: queueLimit) }
            if let feedIndex, poller.isReadable(feedIndex) {
                let seen = telemetry.subscriptionsSeen
                telemetry.handleSubscriptions()
                // A new subscriber hears at once that the broker is exposed, not up to a minute later.
                if telemetry.subscriptionsSeen > seen && !exposed.isEmpty { telemetry.insecure(endpoints: exposed) }
            }
            if let journalIndex, poller.isReadable(journalIndex) { releaseDurable() }
            if afterPoll >= nextTick { perform(core.handle(.tick, at: afterPoll)) }
            try commitJournal(now: afterPoll)
            if let journalFailure { throw journalFailure }
            if let zapIndex, poller.isReadable(zapIndex) { drainZAP() }
            if let monitorIndex, poller.isReadable(monitorIndex) { drainRouterMonitor() }
            if keyWatcher != nil && (broker.takeReloadRequest() || afterPoll - lastKeyCheck >= .seconds(1)) {
                lastKeyCheck = afterPoll
                checkAuthorizedKeys(now: afterPoll)
            }
            if afterPoll - lastInsecureEvent >= .seconds(60) {
                lastInsecureEvent = afterPoll
                if !exposed.isEmpty { telemetry.insecure(endpoints: exposed) }
            }

            heapTrim.check(queued: core.queuedTotal, now: afterPoll)
            if afterPoll - lastMetrics >= configuration.metricsInterval {
                lastMetrics = afterPoll
                telemetry.publishMetrics(core: core, now: afterPoll)
            }
            if let onProgress, afterPoll - lastProgress >= .milliseconds(200) {
                lastProgress = afterPoll
                onProgress(progress(now: afterPoll))
            }

            if sourceEnded && core.pending == 0 { break }
            if case .draining(let since, _) = lifecycle {
                if core.pending == 0 && (sourceEnded || core.inFlightIsEmpty) { break }
                if afterPoll - since >= configuration.gracePeriod { break }
                if broker.isDrainCutShort { break }
            }
        }
        lifecycle = .stopped
        return try finish()
    }

    // MARK: Start-up

    private func startAggregator() throws(BrokerError) {
        let aggregator = Aggregator(
            sink: configuration.topology.sink, bindEndpoint: configuration.aggregatorEndpoint, maxFrameSize: configuration.maxFrameSize,
            inprocEndpoint: configuration.inprocName.map { "inproc://\($0)-aggregator" }, sockets: sockets, logger: logger,
            epoch: core.epoch, recovery: journal?.sinkRecovery(for: configuration.topology.sink))
        do {
            let actor = try aggregator.start()
            self.aggregator = actor
            if case .bound(let endpoint) = actor.readyReport { endpoints.aggregator = endpoint }
        } catch let error as AggregatorFailure {
            throw BrokerError(error.message)
        } catch {
            throw BrokerError(.aggregatorStart, "the aggregator did not start: \(error)")
        }
    }

    /// The aggregator's failure as the run's error: its own LC message when it has one.
    private func aggregatorError(_ error: any Error) -> BrokerError {
        if let failure = error as? AggregatorFailure { return BrokerError(failure.message) }
        return BrokerError(.sinkUnconfirmed, "the aggregator failed: \(error)")
    }

    private func startSource() throws(BrokerError) {
        let spec = configuration.topology.source
        if case .pull(let endpoint) = spec.kind {
            do {
                try sockets.bind(source, as: .source(maxMessageSize: configuration.maxFrameSize), to: endpoint)
                endpoints.source = try? source.lastEndpoint
            } catch .failed(let error) {
                throw BrokerError(.sourceBind, "cannot bind the source endpoint \(endpoint): \(error.code.message) (\(error.code.cName))")
            } catch {
                throw BrokerError(error.description)
            }
            return
        }
        let inproc = "inproc://lancompute-source-\(instance)"
        do { try source.bind(inproc) } catch { throw BrokerError(.brokerSetup, "cannot bind \(inproc): \(error)") }
        do {
            let handoff = SourceHandoff()
            sourceHandoff = handoff
            sourceReader = try SourceReader(spec: spec, sockets: sockets, endpoint: inproc, handoff: handoff, logger: logger).start()
        } catch {
            throw BrokerError(.brokerSetup, "cannot start the source reader: \(error)")
        }
    }

    /// The sink file and the dead-letter file are written (and the dead letters of an earlier run
    /// removed) only where that harms nothing: a path that does not exist yet, or a regular file of ours.
    private func checkOutputPaths() throws(BrokerError) {
        let deadLetters = configuration.resolvedDeadLetterPath
        if let problem = OutputFiles.problem(deadLetters) {
            throw BrokerError(.deadLetterOpen, "the dead-letter file \(deadLetters) \(problem); the broker writes and removes only regular files of its own: give --dead-letter another path")
        }
        if case .file(let path) = configuration.topology.sink.kind, let problem = OutputFiles.problem(path) {
            throw BrokerError(.sinkCreate, "the sink file \(path) \(problem); the broker writes only regular files of its own: give the sink another path")
        }
    }

    private func removeStaleDeadLetterFile() {
        let path = configuration.resolvedDeadLetterPath
        do { try OutputFiles.remove(path) } catch { logger.error("LC2016: cannot remove the dead letters of an earlier run: \(error)") }
    }

    // MARK: Input

    private func drainRouter(now: ContinuousClock.Instant) {
        var count = 0
        defer { flushGathered(now: now) }
        while count < 10_000 {
            let frames: [[UInt8]]
            let userID: String?
            do {
                guard let message = try router.tryReceiveMultipart(property: Message.userIDProperty) else { return }
                frames = message.frames
                userID = message.property
            } catch {
                logger.error("dispatch socket receive failed: \(error)")
                return
            }
            count += 1
            guard frames.count >= 3 else {
                countProtocolError(peer: frames.first ?? [], code: .malformedMessage, detail: "message too short for MDP/0.1 (\(frames.count) frames with the routing id)")
                continue
            }
            let peer = frames[0]
            do {
                if let (peer, message) = try WorkerMessage.routed(frames) {
                    if let refusal = DispatchAccess.workerProtocol.refusal(userID: userID, keys: authorizedKeys) {
                        refuse(socket: "dispatch", peer: peer, reason: "\(message.commandName) refused: \(refusal)")
                        if !core.isRegistered(peer) { send(routed: [peer] + WorkerMessage.disconnect.frames, to: peer) }
                        continue
                    }
                    gathered.append(.worker(peer: peer, message: message, key: userID ?? ""))
                } else if let (peer, message) = try ClientMessage.routed(frames) {
                    flushGathered(now: now)
                    if let refusal = DispatchAccess.of(service: message.service).refusal(userID: userID, keys: authorizedKeys) {
                        refuse(socket: "dispatch", peer: peer, reason: "request for \(message.service) refused: \(refusal)")
                        send(routed: [peer] + ClientMessage(service: message.service, body: [Array("error".utf8), Array("LC2072: \(refusal)".utf8)]).frames,
                             to: peer)
                        continue
                    }
                    handleClient(message, from: peer, now: now)
                } else {
                    countProtocolError(peer: peer, code: .malformedMessage, detail: "not an MDP/0.1 message (frame 2 is neither MDPW01 nor MDPC01)")
                }
            } catch {
                let side = frames[2] == MDP.workerHeader ? "worker" : "client"
                countProtocolError(peer: peer, code: .malformedMessage, detail: "malformed \(side) message: \(error)")
                if side == "worker" && !core.isRegistered(peer) {
                    send(routed: [peer] + WorkerMessage.disconnect.frames, to: peer)
                }
            }
        }
    }

    /// Hands the inputs gathered from a socket to the core in one go, and carries out its actions.
    private func flushGathered(now: ContinuousClock.Instant) {
        guard !gathered.isEmpty else { return }
        let inputs = gathered
        gathered.removeAll(keepingCapacity: true)
        perform(core.handle(batch: inputs, at: now))
    }

    private func handleClient(_ message: ClientMessage, from peer: PeerID, now: ContinuousClock.Instant) {
        func reply(_ body: [[UInt8]]) {
            send(routed: [peer] + ClientMessage(service: message.service, body: body).frames, to: peer)
        }
        switch message.service {
        case "mmi.service":
            let name = message.body.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            guard let stage = core.stage(named: name) else { return reply([Array("404".utf8)]) }
            reply([Array((core.hasWorkers(stage: stage) ? "200" : "404").utf8)])
        case "mmi.topology":
            // Names only: an environment value (a token, a password) never leaves the broker's machine.
            var topology = configuration.topology.withoutEnvironmentValues()
            topology.broker.aggregator = endpoints.aggregator
            topology.broker.bind = endpoints.dispatch
            topology.broker.events = endpoints.events ?? "none"
            // The chains this broker dispatches as one stage: workers run exactly these.
            topology.chains = ChainPlan(configuration.topology).chains
            // This broker reads the `yielding` refresh and handed-back outcomes of the owner policy.
            topology.ownerPolicy = true
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let json = try? encoder.encode(TopologyAnswer(topology: topology, stageFiles: stageFiles.manifest)) else {
                return reply([Array("500".utf8)])
            }
            reply([Array("200".utf8), Array(json)])
        case StageFiles.service:
            reply(stageFiles.reply(to: message.body).frames)
        case UnservedReport.service:
            do {
                let report = try UnservedReport(body: message.body)
                perform(core.handle(.unservedReported(node: report.node, stages: report.stages), at: now))
                reply([Array("200".utf8)])
            } catch {
                countProtocolError(peer: peer, code: .malformedMessage, detail: "malformed mmi.unserved report: \(error)")
                reply([Array("400".utf8)])
            }
        case Intake.service:
            let step = intake(message.body)
            if let problem = step.protocolError { countProtocolError(peer: peer, code: problem.code, detail: problem.message) }
            if !step.inputs.isEmpty || step.recorded != nil {
                journalIntake(step)
                perform(core.handle(batch: step.inputs, at: now))
            }
            // Intake is acknowledged after it is journaled (and synced, with --fsync batch).
            do { try commitJournal(now: now) } catch {
                journalFailure = error
                return
            }
            afterJournal(.routed([peer] + ClientMessage(service: message.service, body: step.reply).frames, peer: peer))
        case "mmi.nodes":
            // The cluster as it is: each node's capabilities, stages and counts (Docs/cluster.md).
            let report = NodesReport(pipeline: configuration.topology.name, summaries: core.nodeSummaries(now: now),
                                     unserved: core.unservedStages)
            guard let json = try? report.jsonData() else { return reply([Array("500".utf8)]) }
            reply([Array("200".utf8), Array(json)])
        case let service where service.hasPrefix("mmi."):
            reply([Array("501".utf8)])
        default:
            guard let stage = core.stage(named: message.service) else {
                countProtocolError(peer: peer, code: .unknownService, detail: "request for unknown service \(message.service)")
                return reply([Array("error".utf8), Array("LC3004: unknown service \(message.service)".utf8)])
            }
            guard message.body.count == 1 else {
                return reply([Array("error".utf8), Array("LC3005: a request to a stage carries exactly one body frame".utf8)])
            }
            clientRequests += 1
            perform(core.handle(.clientRequest(stage: stage, id: (1 << 63) | clientRequests, payload: message.body[0],
                                               client: peer, service: message.service), at: now))
        }
    }

    private func drainControl(now: ContinuousClock.Instant) throws(BrokerError) {
        guard let aggregator else { return }
        do {
            while let event = try aggregator.tryReceive() {
                switch event {
                case .acknowledged(let ids): perform(core.handle(.aggregatorAcknowledged(ids: ids), at: now))
                case .committed(let ids, let length):
                    journal?.sinkCommitted(length: length)
                    perform(core.handle(.aggregatorAcknowledged(ids: ids), at: now))
                case .offered(let offers): perform(core.handle(.outputsOffered(offers), at: now))
                case .bound, .finished: break
                }
            }
        } catch {
            throw aggregatorError(error)
        }
    }

    private func drainSource(now: ContinuousClock.Instant, limit: Int) {
        let external: Bool
        if case .pull = configuration.topology.source.kind { external = true } else { external = false }
        defer { flushGathered(now: now) }
        while core.queuedTotal + gathered.count < limit,
              let (message, userID) = try? source.tryReceiveMultipart(property: Message.userIDProperty) {
            if external {
                // A producer whose key was revoked keeps its connection until it reconnects: drop what it sends.
                if let refusal = DispatchAccess.stageRequest.refusal(userID: userID, keys: authorizedKeys) {
                    refuse(socket: "source", peer: [], reason: "items refused: \(refusal)")
                    continue
                }
                // Each frame from an external producer is one item.
                journal?.accepted(firstID: ItemID.source(position: UInt64(read)), payloads: message)
                for payload in message {
                    gathered.append(.accepted(id: ItemID.source(position: UInt64(read)), payload: payload))
                    read += 1
                }
                continue
            }
            guard message == [SourceHandoff.doorbell], let decoded = sourceHandoff?.take() else {
                logger.warning("ignored a message on the source reader's socket with nothing handed over for it")
                continue
            }
            switch decoded {
            case .batch(let first, let payloads):
                accept(batchFrom: first + sourceIDBase, payloads)
            case .total(let total):
                sourceTotal = Int(total) - (journal.map { Int($0.recovered.finished.count) } ?? 0)
            case .end:
                sourceEnded = true
                return
            case .failed(let message):
                sourceFailure = message
                logger.error("\(message)")
                return
            }
        }
    }

    // MARK: Security

    /// The endpoints bound beyond loopback without keys (`--insecure`): warned about, and published every minute.
    private var exposedEndpoints: [String] {
        guard configuration.security == nil else { return [] }
        let bound = [endpoints.dispatch, endpoints.aggregator, endpoints.events, endpoints.source].compactMap { $0 }
        var exposed = bound.filter { (try? Endpoint(parsing: $0, use: .bind))?.isLoopback == false }
        if let http = endpoints.metricsHTTP, let endpoint = try? Endpoint(hostAndPort: http), !endpoint.isLoopback {
            exposed.append("http://\(http)")
        }
        return exposed
    }

    /// Counts, logs (the first ten, then every hundredth) and publishes a refused peer or message.
    private func refuse(socket: String, peer: PeerID, reason: String) {
        unauthorized += 1
        if unauthorized <= 10 || unauthorized % 100 == 0 {
            logger.warning("refused \(peer.isEmpty ? "a peer" : "peer \(hex(peer))") on the \(socket) socket: \(reason) (\(unauthorized) refused so far)")
        }
        telemetry.unauthorized(socket: socket, address: peer.isEmpty ? "" : hex(peer), reason: reason)
    }

    private func drainZAP() {
        guard let zap else { return }
        do {
            while let event = try zap.tryReceive() {
                switch event {
                case .refused(let domain, let address, let reason):
                    refuse(socket: domain.replacingOccurrences(of: "lancompute.", with: ""), peer: [], reason: "\(address): \(reason)")
                }
            }
        } catch {
            logger.error("the ZAP handler failed: \(error); every new connection is refused from now on")
            self.zap = nil
        }
    }

    /// Handshakes that failed before ZAP was asked: plaintext peers, peers with another server key.
    private func drainRouterMonitor() {
        guard let routerMonitor else { return }
        while let event = try? routerMonitor.tryReceive() {
            let reason = event.event == .handshakeFailedProtocol
                ? "handshake failed (a peer without CURVE, or with another broker key; ZMTP protocol error \(event.value))"
                : "handshake failed (\(event.errorCode.map { $0.cName } ?? String(event.value)))"
            refuse(socket: "dispatch", peer: [], reason: reason)
        }
    }

    /// Reloads authorized_keys when it changed (or SIGHUP asked): the ZAP handler gets the new keys
    /// for new connections, and workers under keys that lost the worker role are let go now.
    private func checkAuthorizedKeys(now: ContinuousClock.Instant) {
        guard let security = configuration.security, var watcher = keyWatcher, let current = authorizedKeys else { return }
        let changed = watcher.changed()
        keyWatcher = watcher
        guard changed else { return }
        let fresh: AuthorizedKeys
        do {
            fresh = try AuthorizedKeys.load(path: security.authorizedKeysPath)
        } catch {
            // Half a file is never applied: the keys in force stay until the file parses.
            logger.error("\(error); keeping the \(current.entries.count) keys in force")
            return
        }
        authorizedKeys = fresh
        try? zap?.send(.keys(fresh))
        let revoked = current.revoked(in: fresh)
        logger.notice("reloaded \(security.authorizedKeysPath): \(fresh.entries.count) keys\(revoked.isEmpty ? "" : ", \(revoked.count) revoked")")
        if !revoked.isEmpty {
            telemetry.keysRevoked(revoked.sorted())
            perform(core.handle(.keysRevoked(revoked), at: now))
        }
    }

    private func countProtocolError(peer: PeerID, code: ProtocolErrorCode, detail: String) {
        protocolErrors += 1
        let reason = ProtocolError(code, detail).description
        if protocolLog.admit(peer, at: .now) {
            logger.warning("dropped a message from peer \(hex(peer)): \(reason) (\(protocolErrors) so far; one line per peer per \(protocolLog.interval))")
        }
        telemetry.protocolError(peer: hex(peer), reason: reason)
    }

    // MARK: Output

    /// Carries out the core's actions in order: sends, the dead-letter file, the log, metrics and events.
    func perform(_ actions: [BrokerAction]) {
        var failedSends: [PeerID: [UInt64]] = [:]
        for action in actions {
            journal?.consume(action)
            switch action {
            case .request(let peer, let form, let items):
                if failedSends[peer] != nil {
                    failedSends[peer]! += items.map(\.header.id)
                    continue
                }
                let frames: [[UInt8]]
                switch form {
                case .batch(let forClients):
                    frames = RequestBatch.routedFrames(to: peer, forClients: forClients, items: items)
                case .plain:
                    let item = items[0]
                    frames = WorkerMessage.routedRequest(
                        to: peer, client: ItemToken(id: item.header.id, epoch: item.header.epoch, attempt: item.header.attempt).bytes, body: CollectionOfOne(item.payload))
                }
                if !send(routed: frames, to: peer) { failedSends[peer] = items.map(\.header.id) }
            case .heartbeat(let peer):
                if failedSends[peer] == nil && !send(routed: [peer] + WorkerMessage.heartbeat.frames, to: peer) {
                    failedSends[peer] = []
                }
            case .probeEcho(let peer, let probe):
                // Counts as the broker's heartbeat to the worker; a peer whose send failed gets none.
                let echo = WorkerMessage.refresh(capabilities: .creditRefresh(probe: probe, credit: nil, roundTrip: nil))
                if failedSends[peer] == nil && !send(routed: [peer] + echo.frames, to: peer) {
                    failedSends[peer] = []
                }
            case .workerCreditChanged(let peer, let stage, let from, let to, let roundTrip):
                let measured = roundTrip.map { String(format: " (round trip %.1f ms)", CreditController.seconds($0) * 1000) } ?? ""
                logger.debug("worker \(hex(peer)) for stage \(stage): credit \(from) -> \(to)\(measured)")
            case .disconnect(let peer):
                send(routed: [peer] + WorkerMessage.disconnect.frames, to: peer)
            case .clientReply(let peer, let service, let body):
                send(routed: [peer] + ClientMessage(service: service, body: body).frames, to: peer)
            case .forwardToAggregator(let outcomes):
                aggregatorOutbox += outcomes
            case .stageCounts(let stage, let received, let latencies):
                telemetry.metrics.itemsReceived(stageAt: stage, count: received)
                for microseconds in latencies { telemetry.metrics.itemCompleted(stageAt: stage, microseconds: microseconds) }
            case .attemptFailed(let stage):
                telemetry.metrics.itemFailed(stageAt: stage)
            case .itemRetried(let stage, let id, let attempt, let reason):
                telemetry.itemRetried(stageAt: stage, itemID: id, attempt: attempt, reason: reason)
            case .deadLettered(let letter):
                deadLetteredTotal += 1
                writeDeadLetter(letter)
                telemetry.deadLettered(letter)
            case .itemsInSink(let latencies):
                inSink += latencies.count
                for microseconds in latencies { _ = self.latency.record(microseconds) }
            case .workerJoined(let worker):
                logger.info("worker \(hex(worker.peer)) (node \(worker.node) on \(worker.host)) serves stage \(worker.stageName) (credit \(worker.credit))")
                telemetry.workerReady(worker)
            case .workerLeft(let peer, let stage, let reason, let detail, let requeued):
                logger.notice("worker \(hex(peer)) for stage \(stage) left (\(reason.rawValue): \(detail)); \(requeued) items sent again")
                telemetry.workerLeft(peer: hex(peer), stage: stage, reason: reason, requeued: requeued)
            case .nodeJoined(let node, let host, let capabilities):
                telemetry.nodeJoined(node: node, host: host, capabilities: capabilities)
            case .nodeLeft(let node, let reason, let detail):
                telemetry.nodeLeft(node: node, reason: reason, detail: detail)
            case .nodeYielding(let node, let host, let yielding, let otherLoad):
                let load = otherLoad.map { String(format: " (the rest of its machine keeps %.2f cores busy)", $0) } ?? ""
                logger.notice("node \(node) on \(host) \(yielding ? "yields to its owner: it takes no new items" : "takes items again: its owner is gone")\(load)")
                telemetry.nodeYielding(node: node, host: host, yielding: yielding, otherLoad: otherLoad)
            case .protocolError(let peer, let code, let detail):
                countProtocolError(peer: peer, code: code, detail: detail)
            case .admission(let admitted, let refused):
                if journal?.holdsAdmissions == true {
                    heldAdmissions.append(.admission(admitted: admitted, refused: refused))
                } else {
                    try? aggregator?.send(.admission(admitted: admitted, refused: refused))
                }
            case .itemsSettled, .sourceItemsFinished, .itemSkipped:
                break  // the journal's
            case .lateMessage:
                lateMessages += 1
            case .stageUnserved(let report):
                if report.isNew {
                    let why = report.reasons.isEmpty
                        ? "no worker has registered for it, and none said why"
                        : report.reasons.map { "\($0.node): \($0.reason)" }.joined(separator: "; ")
                    logger.warning("stage \(report.stageName) is unserved: \(report.waiting) item(s) wait and no live worker serves it (\(why)); its items wait until one registers")
                }
                telemetry.stageUnserved(report)
            case .stageServed(_, let stageName):
                logger.notice("stage \(stageName) is served again")
                telemetry.stageServed(stageName)
            case .impostorOutcome(let id, let sender):
                refuse(socket: "aggregator", peer: [], reason: "outputs for item \(id) from key \(sender.isEmpty ? "(none)" : sender), which the item was not sent to")
            case .foreignOutcome(let peer, let id, let epoch):
                foreignOutcomes += 1
                if foreignOutcomes <= 10 || foreignOutcomes % 1000 == 0 {
                    logger.warning("refused worker \(hex(peer))'s outcome for item \(id) of another run (epoch \(epoch)); \(foreignOutcomes) so far")
                }
            case .breakerChanged(let change):
                let worker = change.peer.map { "worker \(hex($0)) (node \(change.node))" } ?? "node \(change.node)"
                switch change.state {
                case .open:
                    logger.warning("circuit breaker of \(worker) at stage \(change.stageName) opened: \(change.failures) of its last \(change.outcomes) attempts failed; it gets none of the stage's items for \(seconds(change.cooldown ?? .zero)), then one probe")
                case .probing:
                    logger.notice("circuit breaker of \(worker) at stage \(change.stageName) is probing: its cool-down is over, it may take one item")
                case .closed:
                    logger.notice("circuit breaker of \(worker) at stage \(change.stageName) closed: its probe succeeded")
                }
                telemetry.breakerChanged(change)
            case .scheduleTick(let at):
                nextTick = at
            }
        }
        if !aggregatorOutbox.isEmpty {
            let batch = ReplyBatch(outcomes: aggregatorOutbox)
            aggregatorOutbox.removeAll(keepingCapacity: true)
            if journal?.holdsAdmissions == true {
                heldAdmissions.append(.outputs(batch))
            } else {
                try? aggregator?.send(.outputs(batch))
            }
        }
        // A peer whose send failed is gone: the core takes its items back (and may send them elsewhere).
        for (peer, unsent) in failedSends.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            perform(core.handle(.sendFailed(peer: peer, unsent: unsent), at: .now))
        }
    }

    /// Sends frames whose first is the peer's routing id; false when the peer is gone or not keeping up.
    @discardableResult
    func send(routed frames: [[UInt8]], to peer: PeerID) -> Bool {
        do {
            if try router.trySend(multipart: frames) { return true }
            if core.isRegistered(peer) { logger.warning("worker \(hex(peer)) is not keeping up (send queue full); taking its items back") }
            return false
        } catch {
            // EHOSTUNREACH: the peer disconnected.
            return false
        }
    }

    private func writeDeadLetter(_ letter: DeadLetter) {
        if deadLetterFile == nil {
            let path = configuration.resolvedDeadLetterPath
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            do { deadLetterFile = try OutputFiles.openFile(path, .append) } catch {
                logger.error("LC2016: cannot open the dead-letter file \(error)")
            }
        }
        guard let file = deadLetterFile else { return }
        var record: [String: Any] = [
            "id": String(letter.id), "stage": letter.stageName, "attempts": letter.attempts, "reason": letter.detail,
            "reason_code": letter.reason.rawValue, "error": letter.lastError, "stderr": letter.lastStderr,
        ]
        if let text = String(validating: letter.payload, as: UTF8.self) {
            record["item"] = text
        } else {
            record["item_base64"] = Data(letter.payload).base64EncodedString()
        }
        if let json = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes]) {
            _ = json.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fputc(0x0A, file)
            fflush(file)
        }
    }

    private var isPullSource: Bool {
        if case .pull = configuration.topology.source.kind { return true }
        return false
    }

    private func progress(now: ContinuousClock.Instant) -> RunProgress {
        let processed = core.entryStages.first.map { telemetry.metrics.finishedCount(stageAt: $0) } ?? 0
        return RunProgress(read: read, total: sourceTotal, processed: processed, inSink: inSink,
                           deadLettered: deadLetteredTotal, elapsed: now - started)
    }

    // MARK: Finish

    private func finish() throws(BrokerError) -> RunSummary {
        let interrupted = broker.isStopRequested
        // What still waits for the disk leaves before the aggregator is told to finish.
        try commitJournalToDisk(now: .now)
        // Tell the aggregator to write the final aggregate and wait for it to confirm.
        var outputs = 0
        if let aggregator {
            do {
                try aggregator.send(.finish)
                let deadline = ContinuousClock.now + .seconds(30)
                waiting: while true {
                    let left = ContinuousClock.now.duration(to: deadline)
                    guard left > .zero, let event = try aggregator.receive(timeout: left) else {
                        throw BrokerError(.sinkUnconfirmed, "the aggregator did not confirm the sink was written within 30 s")
                    }
                    switch event {
                    case .acknowledged(let ids): perform(core.handle(.aggregatorAcknowledged(ids: ids), at: .now))
                    case .committed(let ids, let length):
                        journal?.sinkCommitted(length: length)
                        perform(core.handle(.aggregatorAcknowledged(ids: ids), at: .now))
                    // Offers that crossed the finish: the aggregator writes nothing more, so they are not
                    // admitted; their items end in the dead letters with the rest of the unfinished.
                    case .offered: continue
                    case .finished(let written, _):
                        outputs = Int(written)
                        break waiting
                    case .bound: continue
                    }
                }
            } catch let error as BrokerError {
                throw error
            } catch let error as AggregatorFailure {
                throw BrokerError(error.message)
            } catch {
                throw BrokerError(.sinkUnconfirmed, "the aggregator did not confirm the sink was written: \(error)")
            }
            aggregator.join()
        }
        sourceReader?.stop()
        try closeJournal(complete: !interrupted && sourceEnded && core.pending == 0 && !isPullSource)
        // An interrupted run still accounts for every item it accepted: what did not reach the
        // sink is written to the dead-letter file, so it can be fed again.
        // Then every worker is told to go, plain MDP workers included: the router lingers a moment
        // so those DISCONNECTs leave before it closes (no item depends on it).
        perform(core.handle(.shutDown(reason: interrupted ? .runStopped : .runEnded), at: .now))
        try? router.set(.linger, .milliseconds(500))
        if let file = deadLetterFile { fclose(file) }
        let wall = ContinuousClock.now - started
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        let summary = RunSummary(
            pipeline: configuration.topology.name, itemsIn: read, itemsOut: outputs,
            deadLettered: deadLetteredTotal, unfinished: max(0, core.pending),
            wallSeconds: seconds, itemsPerSecond: seconds > 0 ? Double(read) / seconds : 0,
            latencyP50Milliseconds: Double(latency.valueAtPercentile(50)) / 1000,
            latencyP99Milliseconds: Double(latency.valueAtPercentile(99)) / 1000,
            protocolErrors: protocolErrors, lateMessages: lateMessages, interrupted: interrupted,
            deadLetterPath: deadLetteredTotal > 0 ? configuration.resolvedDeadLetterPath : nil,
            inputLeft: !sourceEnded && !isPullSource, resumed: journal?.isResume ?? false, alreadyDone: alreadyDone)
        telemetry.publishMetrics(core: core, now: .now)
        telemetry.brokerStopping(summary: summary)
        if let sourceFailure {
            // The failure ends the run, so no summary is printed: say where the items read before it went.
            guard read > 0 else { throw BrokerError(sourceFailure) }
            let whereabouts = deadLetteredTotal > 0
                ? "of the \(read) items read before it, \(deadLetteredTotal) are in the dead-letter file \(configuration.resolvedDeadLetterPath) and the rest reached the sink"
                : "the \(read) items read before it reached the sink"
            throw BrokerError("\(sourceFailure); \(whereabouts)")
        }
        return summary
    }
}
