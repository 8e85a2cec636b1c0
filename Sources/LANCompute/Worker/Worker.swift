// A worker process: fetches the topology from the broker, serves every stage it can, reconnects when the broker goes.

import Foundation
import Logging
import Synchronization
import ZeroMQ

/// How a worker connects and what it offers.
public struct WorkerConfiguration: Sendable {
    /// The broker's dispatch endpoint, e.g. `tcp://head:5555`.
    public var brokerEndpoint: String
    /// Handler slots per stage; nil: each stage's `replicas`.
    public var slots: Int?
    /// `K=V` labels announced to the broker (matched by `requires`/`prefers`).
    public var labels: [String: String]
    /// Serve only these stages; nil: every stage this worker can serve.
    public var stages: Set<String>?
    /// Swift functions serving stages that declare no handler, by stage name.
    public var swiftFunctions: [String: SwiftStageFunction]
    /// The directory `exec` commands and their relative paths resolve against.
    public var workingDirectory: String
    /// This process's id in the cluster (events, metrics).
    public var nodeID: String
    /// Where to PUSH final outputs instead of the aggregator endpoint the broker advertises.
    public var aggregatorEndpoint: String?

    public init(
        brokerEndpoint: String, slots: Int? = nil, labels: [String: String] = [:], stages: Set<String>? = nil,
        swiftFunctions: [String: SwiftStageFunction] = [:],
        workingDirectory: String = FileManager.default.currentDirectoryPath,
        nodeID: String = "\(NodeInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
    ) {
        self.brokerEndpoint = brokerEndpoint
        self.slots = slots
        self.labels = labels
        self.stages = stages
        self.swiftFunctions = swiftFunctions
        self.workingDirectory = workingDirectory
        self.nodeID = nodeID
    }
}

/// Serves stages for a broker until stopped. Start it with ``run()`` on a thread of its own.
///
/// ```swift
/// let worker = Worker(broker: "tcp://127.0.0.1:5555", handlers: [
///     "reverse": { item in [Array(item.reversed())] },
/// ])
/// try worker.run()
/// ```
public final class Worker: Sendable {
    public let configuration: WorkerConfiguration
    let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    let sharedContext: Context?

    /// `context`: the ZeroMQ context to use (needed for inproc endpoints); nil: a context of its own.
    public init(configuration: WorkerConfiguration, logger: Logger = Logger(label: "lancompute.worker"), context: Context? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.sharedContext = context
    }

    /// A worker serving the given stages with Swift functions (and any builtin or exec stage it can).
    public convenience init(broker: String, handlers: [String: SwiftStageFunction], logger: Logger = Logger(label: "lancompute.worker")) {
        self.init(configuration: WorkerConfiguration(brokerEndpoint: broker, swiftFunctions: handlers), logger: logger)
    }

    /// Asks the worker to finish: it tells the broker and returns from ``run()`` (thread-safe).
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }

    /// Connects, registers, serves; on losing the broker, reconnects with backoff. Returns after ``stop()``.
    public func run() throws {
        let context = try sharedContext ?? Context()
        defer { if sharedContext == nil { context.shutdown() } }
        var backoff = Duration.milliseconds(100)
        while !isStopRequested {
            let session = WorkerSession(worker: self, context: context)
            let outcome = session.run()
            session.close()
            switch outcome {
            case .stopped:
                return
            case .served:
                backoff = .milliseconds(100)
            case .brokerUnreachable:
                break
            }
            let deadline = ContinuousClock.now + backoff
            while !isStopRequested && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}

/// One job for a slot thread.
struct SlotJob: Sendable {
    var stage: Int
    var id: UInt64
    var epoch: UInt32
    var attempt: UInt16
    var payload: [UInt8]
}

/// Jobs waiting for a stage's slot threads: a queue guarded by a condition variable.
final class JobQueue: @unchecked Sendable {
    // @unchecked Sendable: every access to `jobs` and `closed` holds `condition`.
    private let condition = NSCondition()
    private var jobs: [SlotJob] = []
    private var head = 0
    private var closed = false

    func put(_ batch: [SlotJob]) {
        condition.lock()
        jobs.append(contentsOf: batch)
        condition.broadcast()
        condition.unlock()
    }

    /// Up to `limit` waiting jobs (at least one: waits for it), or nil once the queue is closed.
    func take(limit: Int) -> [SlotJob]? {
        condition.lock()
        defer { condition.unlock() }
        while head >= jobs.count && !closed { condition.wait() }
        if closed { return nil }
        let end = min(jobs.count, head + max(1, limit))
        let taken = Array(jobs[head..<end])
        head = end
        if head > 1024 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return taken
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// One connection's worth of serving: from fetching the topology until the broker is lost or the worker stops.
final class WorkerSession {
    enum Outcome { case stopped, served, brokerUnreachable }

    struct StageRuntime {
        let spec: StageSpec
        let index: Int
        let isFinal: Bool
        let dealer: Socket
        let queue: JobQueue
        var threads: [Thread]
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        var outcomes: [ItemOutcome] = []
        var aggregated: [ItemOutcome] = []
        /// Items sent by MDP clients: answered in the REPLY even on a final stage.
        var clientItems: Set<UInt64> = []
        /// A fast builtin with one slot runs on the I/O thread itself: no thread hand-off per batch.
        var inlineHandler: (any StageHandler)?
    }

    let worker: Worker
    let configuration: WorkerConfiguration
    let logger: Logger
    let context: Context
    let resultsEndpoint = "inproc://lancompute-worker-results-\(UUID().uuidString)"
    var stages: [StageRuntime] = []
    var results: Socket?
    var aggregator: Socket?
    var aggregatorBacklog: [[[UInt8]]] = []
    var heartbeatInterval = Duration.milliseconds(500)
    var liveness = 3

    init(worker: Worker, context: Context) {
        self.worker = worker
        self.configuration = worker.configuration
        self.logger = worker.logger
        self.context = context
    }

    func run() -> Outcome {
        do {
            guard let topology = try fetchTopology() else {
                return worker.isStopRequested ? .stopped : .brokerUnreachable
            }
            try register(topology)
            if stages.isEmpty {
                logger.warning("this worker can serve none of the stages of pipeline \(topology.name); waiting")
                return .brokerUnreachable
            }
            return try serve()
        } catch {
            logger.error("worker session failed: \(error)")
            return worker.isStopRequested ? .stopped : .brokerUnreachable
        }
    }

    // MARK: Start

    /// Asks the broker for the topology (MMI service `mmi.topology`); nil if it does not answer.
    private func fetchTopology() throws -> Topology? {
        let socket = try Socket(.dealer, context: context)
        defer { socket.close() }
        try socket.connect(configuration.brokerEndpoint)
        try socket.send(multipart: ClientMessage(service: "mmi.topology", body: []).frames)
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline && !worker.isStopRequested {
            guard try socket.poll(.in, timeout: .milliseconds(100)).contains(.in) else { continue }
            let frames = try socket.receiveMultipart()
            guard let reply = try? ClientMessage(frames: frames), reply.service == "mmi.topology",
                  reply.body.count == 2, reply.body[0] == Array("200".utf8) else {
                logger.warning("the broker at \(configuration.brokerEndpoint) answered mmi.topology with something unexpected")
                return nil
            }
            return try JSONDecoder().decode(Topology.self, from: Data(reply.body[1]))
        }
        logger.info("no answer from the broker at \(configuration.brokerEndpoint); retrying")
        return nil
    }

    private func register(_ topology: Topology) throws {
        heartbeatInterval = topology.broker.heartbeatInterval
        liveness = max(1, topology.broker.heartbeatLiveness)
        let finals = Set(topology.terminalStages.map(\.name))
        let results = try Socket(.pull, context: context)
        try results.bind(resultsEndpoint)
        self.results = results

        var needsAggregator = false
        for (index, spec) in topology.stages.enumerated() {
            if let only = configuration.stages, !only.contains(spec.name) { continue }
            if case .unavailable(let reason) = StageHandlers.availability(
                of: spec, swiftFunctions: configuration.swiftFunctions, workingDirectory: configuration.workingDirectory) {
                logger.info("not serving stage \(spec.name): \(reason)")
                continue
            }
            let slots = max(1, configuration.slots ?? spec.replicas)
            let fast = StageHandlers.cost(of: spec) == .fast
            let credit = spec.credit ?? slots * (fast ? 128 : 4)
            let batch = max(1, min(credit, fast ? 64 : slots))
            let capabilities = NodeInfo.capabilities(node: configuration.nodeID, labels: configuration.labels, credit: credit, batch: batch)
            if let unmet = spec.requires.unmetReason(capabilities) {
                logger.info("not serving stage \(spec.name): \(unmet)")
                continue
            }
            let dealer = try Socket(.dealer, context: context)
            try dealer.set(.receiveHighWaterMark, 0)
            try dealer.set(.sendHighWaterMark, 0)
            try dealer.connect(configuration.brokerEndpoint)
            try dealer.send(multipart: WorkerMessage.ready(service: spec.name, capabilities: capabilities).frames)
            let queue = JobQueue()
            // A fast builtin with a single slot is cheaper to run right here than to hand to a thread
            // (a builtin takes microseconds; heartbeats are hundreds of milliseconds apart).
            var inlineHandler: (any StageHandler)?
            if fast && slots == 1 {
                inlineHandler = try? StageHandlers.make(
                    for: spec, swiftFunctions: configuration.swiftFunctions, workingDirectory: configuration.workingDirectory)
            }
            // Fast handlers take several waiting items at once and answer them in one message;
            // slow ones one at a time, so no answer waits behind another item's work.
            let takeLimit = fast ? 16 : 1
            let threads = inlineHandler != nil ? [] : (0..<slots).map { slot in
                startSlot(spec: spec, stage: stages.count, slot: slot, queue: queue, takeLimit: takeLimit)
            }
            let now = ContinuousClock.now
            stages.append(StageRuntime(spec: spec, index: index, isFinal: finals.contains(spec.name), dealer: dealer,
                                       queue: queue, threads: threads, lastHeard: now, lastSent: now, inlineHandler: inlineHandler))
            if finals.contains(spec.name) { needsAggregator = true }
            logger.info("serving stage \(spec.name) with \(slots) slot(s), credit \(credit)")
        }
        if needsAggregator {
            let push = try Socket(.push, context: context)
            try push.set(.sendHighWaterMark, 100_000)
            try push.connect(configuration.aggregatorEndpoint ?? Self.reachable(topology.broker.aggregator, via: configuration.brokerEndpoint))
            aggregator = push
        }
    }

    /// An endpoint the broker advertised as bound on all interfaces, made reachable with the broker's host.
    static func reachable(_ endpoint: String, via broker: String) -> String {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return endpoint }
        let host = endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon]
        guard host == "0.0.0.0" || host == "*" || host == "[::]" else { return endpoint }
        guard broker.hasPrefix("tcp://"), let brokerColon = broker.lastIndex(of: ":") else { return endpoint }
        let brokerHost = broker[broker.index(broker.startIndex, offsetBy: 6)..<brokerColon]
        return "tcp://\(brokerHost)\(endpoint[colon...])"
    }

    private func startSlot(spec: StageSpec, stage: Int, slot: Int, queue: JobQueue, takeLimit: Int) -> Thread {
        let context = self.context
        let endpoint = resultsEndpoint
        let functions = configuration.swiftFunctions
        let directory = configuration.workingDirectory
        let logger = self.logger
        let thread = Thread {
            do {
                let push = try Socket(.push, context: context)
                try push.set(.sendHighWaterMark, 0)
                try push.connect(endpoint)
                var handler: (any StageHandler)?
                var setupFailure: StageFailure?
                do {
                    handler = try StageHandlers.make(for: spec, swiftFunctions: functions, workingDirectory: directory)
                } catch {
                    let failure = (error as? StageFailure) ?? StageFailure("\(error)")
                    setupFailure = failure
                    logger.error("stage \(spec.name): cannot start a handler: \(failure.message)")
                }
                defer { handler?.close() }
                var stageFrame: [UInt8] = []
                stageFrame.appendBigEndian(UInt32(stage))
                var outcomes: [ItemOutcome] = []
                while let jobs = queue.take(limit: takeLimit) {
                    for job in jobs {
                        let status: ItemOutcome.Status
                        if let handler {
                            do {
                                status = .completed(outputs: try handler.process(StageItem(payload: job.payload, id: job.id, attempt: Int(job.attempt))))
                            } catch {
                                let failure = (error as? StageFailure) ?? StageFailure("\(error)")
                                status = .failed(message: failure.message, stderr: failure.stderr ?? "")
                            }
                        } else {
                            status = .failed(message: setupFailure?.message ?? "no handler", stderr: setupFailure?.stderr ?? "")
                        }
                        outcomes.append(ItemOutcome(id: job.id, epoch: job.epoch, attempt: job.attempt, status: status))
                    }
                    try push.send(multipart: [stageFrame] + ReplyBatch(outcomes: outcomes).frames)
                    outcomes.removeAll(keepingCapacity: true)
                }
            } catch {
                logger.debug("slot thread for \(spec.name) stopped: \(error)")
            }
        }
        thread.name = "lancompute-slot-\(spec.name)-\(slot)"
        thread.start()
        return thread
    }

    // MARK: Serve

    private func serve() throws -> Outcome {
        guard let results else { return .brokerUnreachable }
        let poller = Poller()
        for stage in stages { poller.add(stage.dealer) }
        let resultsIndex = poller.add(results)
        let aggregatorIndex = aggregator.map { poller.add($0, events: []) }
        let expiry = heartbeatInterval * liveness

        while true {
            if worker.isStopRequested {
                for stage in stages { try? stage.dealer.send(multipart: WorkerMessage.disconnect.frames) }
                return .stopped
            }
            if let aggregatorIndex { poller.setEvents(aggregatorBacklog.isEmpty ? [] : .out, at: aggregatorIndex) }
            _ = try poller.poll(timeout: min(heartbeatInterval / 2, .milliseconds(100)))
            let now = ContinuousClock.now

            for position in stages.indices where poller.isReadable(position) {
                var received = 0
                while received < 1000, let frames = try stages[position].dealer.tryReceiveMultipart() {
                    received += 1
                    stages[position].lastHeard = now
                    guard let message = try? WorkerMessage(frames: frames) else {
                        logger.warning("LC3006: dropped a malformed message from the broker")
                        continue
                    }
                    switch message {
                    case .request(let client, let body):
                        guard let batch = try? RequestBatch(frames: body) else {
                            logger.warning("LC3006: dropped a malformed request from the broker")
                            continue
                        }
                        if client == MDP.clientItemsAddress {
                            stages[position].clientItems.formUnion(batch.items.map(\.header.id))
                        }
                        if let handler = stages[position].inlineHandler {
                            for item in batch.items {
                                let status: ItemOutcome.Status
                                do {
                                    status = .completed(outputs: try handler.process(StageItem(item)))
                                } catch {
                                    status = .failed(message: error.message, stderr: error.stderr ?? "")
                                }
                                record(ItemOutcome(id: item.header.id, epoch: item.header.epoch, attempt: item.header.attempt, status: status), at: position)
                            }
                            continue
                        }
                        stages[position].queue.put(batch.items.map { item in
                            SlotJob(stage: position, id: item.header.id, epoch: item.header.epoch, attempt: item.header.attempt, payload: item.payload)
                        })
                    case .disconnect:
                        logger.notice("the broker disconnected this worker from stage \(stages[position].spec.name); re-registering")
                        return .served
                    case .heartbeat, .refresh, .ready, .reply:
                        break
                    }
                }
            }
            if poller.isReadable(resultsIndex) {
                var received = 0
                while received < 10_000, let frames = try results.tryReceiveMultipart() {
                    received += 1
                    guard frames.count >= 2, frames[0].count == 4 else { continue }
                    let position = Int(frames[0].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                    guard position < stages.count, let batch = try? ReplyBatch(frames: Array(frames[1...])) else { continue }
                    for outcome in batch.outcomes { record(outcome, at: position) }
                }
            }
            try flushReplies(now: now)

            for position in stages.indices {
                if now - stages[position].lastHeard > expiry {
                    logger.notice("no word from the broker for \(expiry); reconnecting")
                    return .served
                }
                if now - stages[position].lastSent >= heartbeatInterval {
                    try stages[position].dealer.send(multipart: WorkerMessage.heartbeat.frames)
                    stages[position].lastSent = now
                }
            }
        }
    }

    /// Files an item's outcome for the next flush: a final stage's outputs go to the aggregator,
    /// announced in the REPLY; a client's items and everything else are answered in the REPLY.
    private func record(_ outcome: ItemOutcome, at position: Int) {
        let fromClient = stages[position].clientItems.remove(outcome.id) != nil
        if stages[position].isFinal, !fromClient, case .completed(let outputs) = outcome.status {
            stages[position].aggregated.append(outcome)
            stages[position].outcomes.append(ItemOutcome(id: outcome.id, epoch: outcome.epoch, attempt: outcome.attempt, status: .deliveredToAggregator(count: outputs.count)))
        } else {
            stages[position].outcomes.append(outcome)
        }
    }

    /// Sends final outputs to the aggregator first, then the replies that announce them to the broker.
    private func flushReplies(now: ContinuousClock.Instant) throws {
        for position in stages.indices where !stages[position].aggregated.isEmpty {
            aggregatorBacklog.append(ReplyBatch(outcomes: stages[position].aggregated).frames)
            stages[position].aggregated.removeAll(keepingCapacity: true)
        }
        if let aggregator {
            while let next = aggregatorBacklog.first {
                guard try aggregator.trySend(multipart: next) else { break }
                aggregatorBacklog.removeFirst()
            }
        }
        // A reply may only go once the outputs it announces have left for the aggregator.
        guard aggregatorBacklog.isEmpty else { return }
        for position in stages.indices where !stages[position].outcomes.isEmpty {
            let body = ReplyBatch(outcomes: stages[position].outcomes).frames
            stages[position].outcomes.removeAll(keepingCapacity: true)
            try stages[position].dealer.send(multipart: WorkerMessage.reply(client: [], body: body).frames)
            stages[position].lastSent = now
        }
    }

    // MARK: Stop

    func close() {
        for stage in stages {
            stage.queue.close()
            stage.inlineHandler?.close()
        }
        for stage in stages { stage.dealer.close() }
        results?.close()
        aggregator?.close()
        // Slot threads finish their current item and exit; their PUSH sockets close with them.
        for stage in stages {
            for thread in stage.threads { _ = thread }
        }
        stages.removeAll()
    }
}
