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
    /// Serve Prometheus text at HOST:PORT/metrics; nil: off.
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
    public var maxFrameSize: Int64 = 512 * 1024 * 1024
    /// Allow binding to addresses the network can reach without encryption; otherwise such a bind
    /// fails with LC2005 (``SocketFactory``).
    public var insecure = false

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
    public var interrupted: Bool
    public var deadLetterPath: String?

    /// Exit status for the CLI: 0 when everything reached the sink, 1 otherwise.
    public var exitCode: Int32 { deadLettered == 0 && unfinished == 0 ? 0 : 1 }
}

/// The end marker `lancompute feed` sends on a pull source after its last line:
/// two frames, this one and `"<feeder id> <lines sent>"`. It is not an item.
public enum FeedMarker {
    public static let end: [UInt8] = [0] + Array("LCFEED-END".utf8)
}

/// A broker failure that stops the run; `message` starts with its LC code.
public struct BrokerError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs one pipeline: dispatches items to workers, tracks them, and ends when all are in the sink.
public final class Broker: Sendable {
    public let configuration: BrokerConfiguration
    let logger: Logger
    private let stopRequested = Atomic<Bool>(false)

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
            do { context = try Context() } catch { throw BrokerError("LC2000: cannot create a ZeroMQ context: \(error)") }
        }
        // Ends the source reader's blocked send, if the run stopped before the source did.
        defer { if sharedContext == nil { context.shutdown() } }
        let loop = try BrokerLoop(broker: self, context: context)
        return try loop.run(onReady: onReady, onProgress: onProgress)
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }
}

/// The state of one run of the loop; lives on the broker thread only.
final class BrokerLoop: DispatchObserver {
    let broker: Broker
    let configuration: BrokerConfiguration
    let logger: Logger
    let context: Context
    let sockets: SocketFactory
    let dispatcher: Dispatcher
    let router: Socket
    let source: Socket
    let instance = UUID().uuidString
    var endpoints: BrokerEndpoints
    /// Started by `run`; joined by `finish`, or when the loop is released after a failure.
    var aggregator: ActorThread<AggregatorCommand, AggregatorEvent>?
    var sourceReader: ActorThread<Never, Never>?
    /// The aggregator's end of the pipe, polled with the other sockets.
    var control: Socket { aggregator!.socket }

    var read = 0
    var sourceTotal: Int?
    var sourceEnded = false
    var sourceFailure: String?
    var inSink = 0
    var protocolErrors = 0
    var clientRequests: UInt64 = 0
    /// Feeders whose end marker arrived: id -> lines they sent.
    var finishedFeeds: [String: Int] = [:]
    var deadLetterFile: UnsafeMutablePointer<FILE>?
    var latency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    let started = ContinuousClock.now
    let telemetry: Telemetry

    init(broker: Broker, context: Context) throws(BrokerError) {
        self.broker = broker
        self.configuration = broker.configuration
        self.logger = broker.logger
        self.context = context
        self.dispatcher = Dispatcher(topology: configuration.topology, ackTimeout: configuration.ackTimeout)
        sockets = SocketFactory(context: context, insecure: configuration.insecure)
        do {
            router = try sockets.socket(.dispatch(maxMessageSize: configuration.maxFrameSize))
            source = try sockets.socket(.source(maxMessageSize: configuration.maxFrameSize))
        } catch {
            throw BrokerError("LC2000: cannot create the broker's sockets: \(error)")
        }
        do {
            try sockets.bind(router, as: .dispatch(maxMessageSize: configuration.maxFrameSize), to: configuration.dispatchEndpoint)
        } catch .failed(let error) {
            throw BrokerError("LC2001: cannot bind the dispatch endpoint \(configuration.dispatchEndpoint): \(error.code.message) (\(error.code.cName)); is another broker running there? Choose another with --bind")
        } catch {
            throw BrokerError(error.description)
        }
        // Read back before the inproc bind below, which would become the "last" endpoint.
        endpoints = BrokerEndpoints(dispatch: (try? router.lastEndpoint) ?? configuration.dispatchEndpoint, aggregator: configuration.aggregatorEndpoint)
        if let name = configuration.inprocName {
            do { try router.bind("inproc://\(name)-dispatch") } catch { throw BrokerError("LC2000: cannot bind inproc://\(name)-dispatch: \(error)") }
        }
        telemetry = Telemetry(topology: configuration.topology, logger: logger)
        dispatcher.observer = self
    }

    func run(onReady: @Sendable (BrokerEndpoints) -> Void, onProgress: (@Sendable (RunProgress) -> Void)?) throws(BrokerError) -> RunSummary {
        try startAggregator()
        try startSource()
        do {
            endpoints.events = try telemetry.start(configuration: configuration, context: context)
        } catch {
            if configuration.eventsRequired { throw error }
            logger.warning("\(error.message); running without the events feed")
        }
        endpoints.metricsHTTP = telemetry.metricsHTTPEndpoint
        onReady(endpoints)
        logger.info("broker for pipeline \(configuration.topology.name) listening on \(endpoints.dispatch)")
        telemetry.brokerStarted(endpoints: endpoints)
        removeStaleDeadLetterFile()

        let poller = Poller()
        let routerIndex = poller.add(router)
        let controlIndex = poller.add(control)
        let sourceIndex = poller.add(source)
        let feedIndex = telemetry.feedSocket.map { poller.add($0) }

        var lastTick = ContinuousClock.now
        var lastProgress = ContinuousClock.now
        var lastMetrics = ContinuousClock.now
        var stoppingSince: ContinuousClock.Instant?
        let tickInterval = min(configuration.topology.broker.heartbeatInterval / 2, .milliseconds(250))
        let queueLimit = max(1, configuration.topology.broker.queueLimit)
        var backpressure = false

        while true {
            let now = ContinuousClock.now
            if stoppingSince == nil && (broker.isStopRequested || sourceFailure != nil) {
                stoppingSince = now
                logger.notice(sourceFailure != nil ? "source failed; draining in-flight work" : "stop requested; draining in-flight work")
            }
            let intakeOpen = stoppingSince == nil && !sourceEnded
            let room = dispatcher.queuedTotal < queueLimit
            if intakeOpen && room == backpressure {
                backpressure = !room
                for stage in dispatcher.entryStages {
                    telemetry.backpressure(stage: dispatcher.stages[stage].spec.name, queued: dispatcher.queuedTotal, limit: queueLimit, active: backpressure)
                }
            }
            poller.setEvents(intakeOpen && room ? .in : [], at: sourceIndex)

            let untilTick = tickInterval - (now - lastTick)
            _ = try? poller.poll(timeout: max(.zero, min(untilTick, .milliseconds(100))))
            let afterPoll = ContinuousClock.now

            if poller.isReadable(routerIndex) { drainRouter(now: afterPoll) }
            if poller.isReadable(controlIndex) { try drainControl(now: afterPoll) }
            if poller.isReadable(sourceIndex) { drainSource(now: afterPoll, limit: queueLimit) }
            if let feedIndex, poller.isReadable(feedIndex) { telemetry.handleSubscriptions() }

            dispatcher.dispatch(now: afterPoll)
            if afterPoll - lastTick >= tickInterval {
                lastTick = afterPoll
                dispatcher.tick(now: afterPoll)
                dispatcher.dispatch(now: afterPoll)
            }
            flushEffects(now: afterPoll)

            if afterPoll - lastMetrics >= configuration.metricsInterval {
                lastMetrics = afterPoll
                telemetry.publishMetrics(dispatcher: dispatcher, now: afterPoll)
            }
            if let onProgress, afterPoll - lastProgress >= .milliseconds(200) {
                lastProgress = afterPoll
                onProgress(progress(now: afterPoll))
            }

            if sourceEnded && dispatcher.pending == 0 { break }
            if let since = stoppingSince {
                if dispatcher.pending == 0 && (sourceEnded || dispatcher.inFlight.isEmpty) { break }
                if afterPoll - since >= configuration.gracePeriod { break }
                if sourceFailure != nil && dispatcher.inFlight.isEmpty { break }
            }
        }
        return try finish()
    }

    // MARK: Start-up

    private func startAggregator() throws(BrokerError) {
        let aggregator = Aggregator(
            sink: configuration.topology.sink, bindEndpoint: configuration.aggregatorEndpoint, maxFrameSize: configuration.maxFrameSize,
            inprocEndpoint: configuration.inprocName.map { "inproc://\($0)-aggregator" }, sockets: sockets, logger: logger)
        do {
            let actor = try aggregator.start()
            self.aggregator = actor
            if case .bound(let endpoint) = actor.readyReport { endpoints.aggregator = endpoint }
        } catch let error as AggregatorFailure {
            throw BrokerError(error.message)
        } catch {
            throw BrokerError("LC2002: the aggregator did not start: \(error)")
        }
    }

    /// The aggregator's failure as the run's error: its own LC message when it has one.
    private func aggregatorError(_ error: any Error) -> BrokerError {
        if let failure = error as? AggregatorFailure { return BrokerError(failure.message) }
        return BrokerError("LC2004: the aggregator failed: \(error)")
    }

    private func startSource() throws(BrokerError) {
        let spec = configuration.topology.source
        if case .pull(let endpoint) = spec.kind {
            do {
                try sockets.bind(source, as: .source(maxMessageSize: configuration.maxFrameSize), to: endpoint)
                endpoints.source = try? source.lastEndpoint
            } catch .failed(let error) {
                throw BrokerError("LC2003: cannot bind the source endpoint \(endpoint): \(error.code.message) (\(error.code.cName))")
            } catch {
                throw BrokerError(error.description)
            }
            return
        }
        let inproc = "inproc://lancompute-source-\(instance)"
        do { try source.bind(inproc) } catch { throw BrokerError("LC2000: cannot bind \(inproc): \(error)") }
        do {
            sourceReader = try SourceReader(spec: spec, sockets: sockets, endpoint: inproc, logger: logger).start()
        } catch {
            throw BrokerError("LC2000: cannot start the source reader: \(error)")
        }
    }

    private func removeStaleDeadLetterFile() {
        let path = configuration.resolvedDeadLetterPath
        if FileManager.default.fileExists(atPath: path) { try? FileManager.default.removeItem(atPath: path) }
    }

    // MARK: Input

    private func drainRouter(now: ContinuousClock.Instant) {
        var count = 0
        while count < 10_000 {
            let frames: [[UInt8]]
            do {
                guard let message = try router.tryReceiveMultipart() else { return }
                frames = message
            } catch {
                logger.error("dispatch socket receive failed: \(error)")
                return
            }
            count += 1
            guard frames.count >= 2 else {
                countProtocolError(peer: frames.first ?? [], reason: "LC3001: message with no frames after the routing id")
                continue
            }
            let peer = frames[0]
            let body = frames[1...]
            // The commonest message, a REPLY, is decoded straight from the frames.
            if frames.count >= 6 && frames[1].isEmpty && frames[2] == MDP.workerHeader
                && frames[3] == [MDP.Command.reply.rawValue] && frames[5].isEmpty {
                dispatcher.handleReply(from: peer, client: frames[4], body: frames[6...], now: now)
            } else if body.count >= 2 && frames[2] == MDP.workerHeader {
                do {
                    dispatcher.handle(try WorkerMessage(frames: body), from: peer, now: now)
                } catch {
                    countProtocolError(peer: peer, reason: "LC3001: malformed worker message: \(error)")
                    if dispatcher.workers[peer] == nil {
                        dispatcher.effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
                    }
                }
            } else if body.count >= 2 && frames[2] == MDP.clientHeader {
                do {
                    handleClient(try ClientMessage(frames: Array(body)), from: peer, now: now)
                } catch {
                    countProtocolError(peer: peer, reason: "LC3001: malformed client message: \(error)")
                }
            } else {
                countProtocolError(peer: peer, reason: "LC3001: not an MDP/0.1 message (frame 2 is neither MDPW01 nor MDPC01)")
            }
        }
    }

    private func handleClient(_ message: ClientMessage, from peer: PeerID, now: ContinuousClock.Instant) {
        func reply(_ body: [[UInt8]]) {
            dispatcher.effects.append(.send(peer: peer, frames: ClientMessage(service: message.service, body: body).frames))
        }
        switch message.service {
        case "mmi.service":
            let name = message.body.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            guard let stage = dispatcher.stage(named: name) else { return reply([Array("404".utf8)]) }
            reply([Array((dispatcher.stages[stage].workers.isEmpty ? "404" : "200").utf8)])
        case "mmi.topology":
            var topology = configuration.topology
            topology.broker.aggregator = endpoints.aggregator
            topology.broker.bind = endpoints.dispatch
            topology.broker.events = endpoints.events ?? "none"
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            guard let json = try? encoder.encode(topology) else { return reply([Array("500".utf8)]) }
            reply([Array("200".utf8), Array(json)])
        case "mmi.feed":
            // Has the feeder with this id finished, and how many lines did it send?
            let id = message.body.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            guard let count = finishedFeeds[id] else { return reply([Array("404".utf8)]) }
            reply([Array("200".utf8), Array(String(count).utf8)])
        case let service where service.hasPrefix("mmi."):
            reply([Array("501".utf8)])
        default:
            guard let stage = dispatcher.stage(named: message.service) else {
                countProtocolError(peer: peer, reason: "LC3004: request for unknown service \(message.service)")
                return reply([Array("error".utf8), Array("LC3004: unknown service \(message.service)".utf8)])
            }
            guard message.body.count == 1 else {
                return reply([Array("error".utf8), Array("LC3005: a request to a stage carries exactly one body frame".utf8)])
            }
            clientRequests += 1
            dispatcher.acceptClientRequest(
                stage: stage, id: (1 << 63) | clientRequests, payload: message.body[0],
                client: ClientReturn(peer: peer, service: message.service), now: now)
        }
    }

    private func drainControl(now: ContinuousClock.Instant) throws(BrokerError) {
        guard let aggregator else { return }
        do {
            while let event = try aggregator.tryReceive() {
                if case .acknowledged(let ids) = event { dispatcher.acknowledge(ids, now: now) }
            }
        } catch {
            throw aggregatorError(error)
        }
    }

    private func drainSource(now: ContinuousClock.Instant, limit: Int) {
        let external: Bool
        if case .pull = configuration.topology.source.kind { external = true } else { external = false }
        while dispatcher.queuedTotal < limit, let message = try? source.tryReceiveMultipart() {
            if external {
                // A feeder's end marker: every line it sent before has been accepted.
                if message.count == 2 && message[0] == FeedMarker.end {
                    let text = String(decoding: message[1], as: UTF8.self).split(separator: " ")
                    if text.count == 2, let count = Int(text[1]) { finishedFeeds[String(text[0])] = count }
                    continue
                }
                // Each frame from an external producer is one item.
                for payload in message {
                    dispatcher.accept(id: ItemID.source(position: UInt64(read)), payload: payload, now: now)
                    read += 1
                }
                continue
            }
            guard let decoded = try? SourceMessage(frames: message) else {
                logger.warning("dropped a malformed message from the source reader")
                continue
            }
            switch decoded {
            case .batch(let first, let payloads):
                for (offset, payload) in payloads.enumerated() {
                    dispatcher.accept(id: ItemID.source(position: first + UInt64(offset)), payload: payload, now: now)
                }
                read += payloads.count
            case .total(let total):
                sourceTotal = Int(total)
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

    private func countProtocolError(peer: PeerID, reason: String) {
        protocolErrors += 1
        if protocolErrors <= 10 || protocolErrors % 1000 == 0 {
            logger.warning("dropped a message from peer \(hex(peer)): \(reason) (\(protocolErrors) so far)")
        }
        telemetry.protocolError(peer: hex(peer), reason: reason)
    }

    // MARK: Output

    private func flushEffects(now: ContinuousClock.Instant) {
        if !dispatcher.aggregatorOutbox.isEmpty {
            let batch = ReplyBatch(outcomes: dispatcher.aggregatorOutbox)
            dispatcher.aggregatorOutbox.removeAll(keepingCapacity: true)
            try? aggregator?.send(.outputs(batch))
        }
        var rounds = 0
        while !dispatcher.effects.isEmpty && rounds < 100 {
            rounds += 1
            let effects = dispatcher.effects
            dispatcher.effects.removeAll(keepingCapacity: true)
            for effect in effects { apply(effect, now: now) }
        }
    }

    private func apply(_ effect: DispatchEffect, now: ContinuousClock.Instant) {
        switch effect {
        case .send(let peer, let frames):
            send(routed: [peer] + frames, to: peer, now: now)
        case .sendRouted(let peer, let frames):
            send(routed: frames, to: peer, now: now)
        case .deadLettered(let item, let stage, let reason):
            writeDeadLetter(item, stage: stage, reason: reason)
            telemetry.deadLettered(stage: stage, itemID: item.id, attempts: item.attempts, reason: reason)
        case .workerJoined(let peer, let stage, let capabilities):
            logger.info("worker \(hex(peer)) on \(capabilities["host"] ?? "?") serves stage \(stage) (credit \(capabilities.credit))")
            telemetry.workerReady(peer: hex(peer), node: capabilities["node"] ?? hex(peer), stage: stage, credit: capabilities.credit)
        case .workerLeft(let peer, let stage, let reason, let requeued):
            logger.notice("worker \(hex(peer)) for stage \(stage) \(reason); \(requeued) items sent again")
            telemetry.workerLeft(peer: hex(peer), stage: stage, reason: reason, requeued: requeued)
        case .nodeJoined(let node, let host, let capabilities):
            telemetry.nodeJoined(node: node, host: host, capabilities: capabilities)
        case .nodeLeft(let node, let reason):
            telemetry.nodeLeft(node: node, reason: reason)
        case .protocolError(let peer, let reason):
            countProtocolError(peer: peer, reason: reason)
        }
    }

    /// Sends frames whose first is the peer's routing id; a peer that is gone or not keeping up loses its items.
    private func send(routed frames: [[UInt8]], to peer: PeerID, now: ContinuousClock.Instant) {
        do {
            if try !router.trySend(multipart: frames) {
                logger.warning("worker \(hex(peer)) is not keeping up (send queue full); taking its items back")
                dispatcher.sendFailed(peer: peer, now: now)
            }
        } catch {
            // EHOSTUNREACH: the peer disconnected. Its items go back to the queue.
            dispatcher.sendFailed(peer: peer, now: now)
        }
    }

    private func writeDeadLetter(_ item: BrokerItem, stage: String, reason: String) {
        if deadLetterFile == nil {
            let path = configuration.resolvedDeadLetterPath
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            deadLetterFile = fopen(path, "ab")
            if deadLetterFile == nil { logger.error("LC2016: cannot open the dead-letter file \(path)") }
        }
        guard let file = deadLetterFile else { return }
        let text = String(validating: item.payload, as: UTF8.self)
        var record: [String: Any] = [
            "id": String(item.id), "stage": stage, "attempts": item.attempts, "reason": reason,
            "error": item.lastError, "stderr": item.lastStderr,
        ]
        if let text { record["item"] = text } else { record["item_base64"] = Data(item.payload).base64EncodedString() }
        if let json = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) {
            _ = (String(decoding: json, as: UTF8.self) + "\n").withCString { fputs($0, file) }
            fflush(file)
        }
    }

    private func progress(now: ContinuousClock.Instant) -> RunProgress {
        let entry = dispatcher.entryStages.first
        let processed = entry.map { dispatcher.stages[$0].counters.completed + dispatcher.stages[$0].counters.deadLettered } ?? 0
        return RunProgress(read: read, total: sourceTotal, processed: processed, inSink: inSink,
                           deadLettered: dispatcher.deadLetteredTotal, elapsed: now - started)
    }

    // MARK: Finish

    private func finish() throws(BrokerError) -> RunSummary {
        let interrupted = broker.isStopRequested
        // Tell the aggregator to write the final aggregate and wait for it to confirm.
        var outputs = 0
        if let aggregator {
            do {
                try aggregator.send(.finish)
                let deadline = ContinuousClock.now + .seconds(30)
                waiting: while true {
                    let left = ContinuousClock.now.duration(to: deadline)
                    guard left > .zero, let event = try aggregator.receive(timeout: left) else {
                        throw BrokerError("LC2004: the aggregator did not confirm the sink was written within 30 s")
                    }
                    switch event {
                    case .acknowledged(let ids): dispatcher.acknowledge(ids, now: .now)
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
                throw BrokerError("LC2004: the aggregator did not confirm the sink was written: \(error)")
            }
            aggregator.join()
        }
        sourceReader?.stop()
        // An interrupted run still accounts for every item it accepted: what did not reach the
        // sink is written to the dead-letter file, so it can be fed again.
        if dispatcher.pending > 0 {
            dispatcher.abandonAll(reason: interrupted
                ? "the run was stopped before the item was finished" : "the run ended before the item was finished")
        }
        dispatcher.disconnectAll()
        flushEffects(now: .now)
        if let file = deadLetterFile { fclose(file) }
        let wall = ContinuousClock.now - started
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        let summary = RunSummary(
            pipeline: configuration.topology.name, itemsIn: read, itemsOut: outputs,
            deadLettered: dispatcher.deadLetteredTotal, unfinished: max(0, dispatcher.pending),
            wallSeconds: seconds, itemsPerSecond: seconds > 0 ? Double(read) / seconds : 0,
            latencyP50Milliseconds: Double(latency.valueAtPercentile(50)) / 1000,
            latencyP99Milliseconds: Double(latency.valueAtPercentile(99)) / 1000,
            protocolErrors: protocolErrors, interrupted: interrupted,
            deadLetterPath: dispatcher.deadLetteredTotal > 0 ? configuration.resolvedDeadLetterPath : nil)
        telemetry.publishMetrics(dispatcher: dispatcher, now: .now)
        telemetry.brokerStopping(summary: summary)
        if let sourceFailure { throw BrokerError(sourceFailure) }
        return summary
    }

    // MARK: DispatchObserver

    func itemReceived(stage: Int) { telemetry.metrics.itemReceived(stageAt: stage) }
    func itemCompleted(stage: Int, latency: Duration) { telemetry.metrics.itemCompleted(stageAt: stage, latency: latency) }
    func itemFailed(stage: Int) { telemetry.metrics.itemFailed(stageAt: stage) }
    func itemRetried(stage: Int) { telemetry.metrics.itemRetried(stageAt: stage) }
    func itemDeadLettered(stage: Int) { telemetry.metrics.itemDeadLettered(stageAt: stage) }
    func itemInSink(latency: Duration) {
        inSink += 1
        let micros = latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000
        _ = self.latency.record(UInt64(max(0, micros)))
    }
}
