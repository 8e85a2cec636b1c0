// The worker's I/O thread: owns every socket, feeds the session core inputs and carries out its actions.

import Foundation
import Logging
import ZeroMQ

/// The poll loop around ``WorkerSessionCore``. It runs on the thread that called `Worker.run()`,
/// which creates, uses and closes every socket below; slot threads own only their wake-up PUSH.
final class WorkerShell {
    /// How long stopping waits for slot threads busy with an item before leaving them to finish it.
    static let slotJoinTimeout = Duration.seconds(2)
    /// How long a goodbye (the last replies and the DISCONNECT) may take to leave when the worker
    /// finishes. Best effort only: if it does not leave, the broker notices the silence and sends
    /// the items again, so no guarantee rests on it.
    static let goodbyeLinger = Duration.milliseconds(500)

    private let worker: Worker
    private let configuration: WorkerConfiguration
    private let logger: Logger
    private let context: Context
    private var core: WorkerSessionCore

    private var topologySocket: Socket?
    private var dealers: [Socket] = []
    /// Messages a stage DEALER could not take at once, in order (one list per dealer). Its high-water
    /// mark is unlimited, so this holds something only while the DEALER has no connection to queue on
    /// (an inproc broker that closed, a TCP connection being made): a blocking send would stop the
    /// whole worker there, heartbeats and stop requests included.
    private var dealerBacklogs: [[[[UInt8]]]] = []
    private var aggregator: Socket?
    /// Final outputs the aggregator PUSH could not take yet, in order; each one sent is reported to the core.
    private var aggregatorBacklog: [[[UInt8]]] = []
    private var pools: SlotPools?
    /// Bumped whenever the set of sockets changes, so a read loop stops using sockets of a closed session.
    private var generation = 0
    private var poller: (poller: Poller, generation: Int, aggregatorIndex: Int?, wakeIndex: Int?, topologyIndex: Int?)?
    private var nextTick: ContinuousClock.Instant?
    private var pending: [WorkerInput] = []
    private var feeding = false
    private var stopSeen = 0
    private var finished = false
    /// Why the core gave up (``WorkerAction/fail(_:)``): `run()` returns it.
    private var failure: RuntimeError?
    /// Watches the handshakes of the sockets to the broker: a refused key ends the worker.
    private let connectionGuard: ConnectionGuard
    private var lastGuardCheck = ContinuousClock.now
    /// The owner policy's counters (`--yield-to-owner`): the previous reading and when it was taken.
    private var ownerReading: (times: CPUTimes, at: ContinuousClock.Instant)?

    init(worker: Worker, context: Context) {
        self.worker = worker
        self.configuration = worker.configuration
        self.logger = worker.logger
        self.context = context
        self.core = WorkerSessionCore(configuration: worker.configuration)
        self.connectionGuard = ConnectionGuard(endpoint: worker.configuration.brokerEndpoint,
                                               publicKey: worker.configuration.curve?.keyPair.publicKeyZ85)
    }

    /// Serves until the core says finish (after a stop), or until the broker refuses this worker
    /// (returned). Every socket is closed when it returns.
    func run() -> RuntimeError? {
        // Load, memory, disk and GPU use, read again on a thread of its own, for the refreshes.
        let sampler = FingerprintSampler(fingerprint: NodeInfo.fingerprint(measuringSpeed: configuration.measuresSpeed), logger: logger)
        defer { sampler.stop() }
        feed(.start)
        while !finished {
            if ContinuousClock.now - lastGuardCheck >= .milliseconds(100) {
                lastGuardCheck = .now
                if let failure = connectionGuard.check() {
                    closeSession(goodbye: false)
                    return failure
                }
            }
            measureOwnerLoad()
            if let values = sampler.take() { feed(.fingerprintRead(values)) }
            let level = worker.requestedStop
            if level > stopSeen {
                stopSeen = level
                feed(.stopRequested(immediately: level >= 2))
                continue
            }
            let now = ContinuousClock.now
            // Never longer than 100 ms, so a stop request is seen promptly.
            let wait = nextTick.map { max(.zero, min($0 - now, .milliseconds(100))) } ?? .milliseconds(100)
            do {
                try pollOnce(timeout: wait)
            } catch let error as ZMQError where error.code == .terminated {
                // The context is shutting down (the process, or `lancompute run`, is ending): there is
                // no broker left to say goodbye to. Stop quietly; this is no failure.
                closeSession(goodbye: false)
                return nil
            } catch {
                feed(.sessionFailed("\(error)"))
            }
            if let tick = nextTick, ContinuousClock.now >= tick {
                nextTick = nil
                feed(.tick)
            }
        }
        closeSession(goodbye: true)
        return failure
    }

    // MARK: Owner policy

    /// How often the rest of the machine's load is measured, over the interval since the last reading.
    static let ownerSampleInterval = Duration.seconds(1)

    /// Reads the CPU counters about once a second and gives the core the load that is not this worker's.
    private func measureOwnerLoad() {
        guard configuration.ownerThreshold != nil else { return }
        let now = ContinuousClock.now
        if let last = ownerReading, now - last.at < Self.ownerSampleInterval { return }
        guard let times = CPUTimesReader().read() else { return }
        let previous = ownerReading
        ownerReading = (times, now)
        guard let previous else { return }
        feed(.ownerLoad(times.otherLoad(since: previous.times, elapsed: now - previous.at)))
    }

    /// Waits out `timeout` with no socket to poll (backing off before a reconnect), returning as
    /// soon as a stop is asked: `lancompute run` stops its workers right after the broker's
    /// DISCONNECT sent them into a backoff, and a whole wait of 100 ms was then added to the end
    /// of every run.
    private func sleepUnlessStopped(_ timeout: Duration) {
        let deadline = ContinuousClock.now + timeout
        // Bounded: each pass waits out the rest of the timeout or takes one stop signal.
        while worker.requestedStop <= stopSeen {
            let left = deadline - .now
            guard left > .zero else { return }
            worker.waitForStopRequest(upTo: left)
        }
    }

    // MARK: Inputs

    /// Hands an input to the core and carries out what it returns; inputs that carrying out produces
    /// (an inline handler's results, a push that left) queue up behind, so actions keep their order.
    private func feed(_ input: WorkerInput) {
        pending.append(input)
        guard !feeding else { return }
        feeding = true
        defer { feeding = false }
        var index = 0
        while index < pending.count {
            let actions = core.handle(pending[index], at: .now)
            index += 1
            for action in actions { perform(action) }
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func pollOnce(timeout: Duration) throws(ZMQError) {
        if poller?.generation != generation { rebuildPoller() }
        guard let (poller, session, aggregatorIndex, wakeIndex, topologyIndex) = poller else { return }
        if let aggregatorIndex { poller.setEvents(aggregatorBacklog.isEmpty ? [] : .out, at: aggregatorIndex) }
        for position in dealers.indices { poller.setEvents(dealerBacklogs[position].isEmpty ? .in : [.in, .out], at: position) }
        if poller.count == 0 {
            sleepUnlessStopped(timeout)
            return
        }
        guard try poller.poll(timeout: timeout) > 0 else { return }

        for position in dealers.indices where session == generation && poller.readyEvents(at: position).contains(.out) {
            flushDealer(position)
        }
        for position in dealers.indices where session == generation && poller.isReadable(position) {
            var received = 0
            while received < 1000, session == generation, let frames = try dealers[position].tryReceiveMultipart() {
                received += 1
                do {
                    feed(.brokerMessage(stage: position, try WorkerMessage(frames: frames)))
                } catch {
                    feed(.malformedBrokerMessage(stage: position))
                }
            }
        }
        if let wakeIndex, session == generation, poller.isReadable(wakeIndex), let pools {
            for result in try pools.takeResults() where session == generation {
                feed(.slotResults(stage: result.stage, result.outcomes))
            }
        }
        if let aggregatorIndex, session == generation, poller.readyEvents(at: aggregatorIndex).contains(.out) {
            flushAggregator()
        }
        if let topologyIndex, session == generation, poller.isReadable(topologyIndex), let socket = topologySocket {
            while session == generation, let frames = try socket.tryReceiveMultipart() {
                feed(.topologyReply(frames))
            }
        }
    }

    private func rebuildPoller() {
        let poller = Poller()
        for dealer in dealers { _ = poller.add(dealer) }
        let wakeIndex = pools.map { poller.add($0.wake) }
        let aggregatorIndex = aggregator.map { poller.add($0, events: []) }
        let topologyIndex = topologySocket.map { poller.add($0) }
        self.poller = (poller, generation, aggregatorIndex, wakeIndex, topologyIndex)
    }

    // MARK: Actions

    private func perform(_ action: WorkerAction) {
        switch action {
        case .requestTopology:
            do {
                closeTopologySocket()
                let socket = try makeSocket(.topology)
                topologySocket = socket
                generation += 1
                try socket.connect(configuration.brokerEndpoint)
                try socket.send(multipart: ClientMessage(service: "mmi.topology", body: []).frames)
            } catch {
                feed(.sessionFailed("cannot ask \(configuration.brokerEndpoint) for the topology: \(error)"))
            }
        case .fetchStageFiles(let files):
            for file in files {
                if let cache = configuration.stageFileCache, cache.holds(file) {
                    feed(.stageFileStored(sha256: file.sha256, failure: nil))
                    continue
                }
                guard let socket = topologySocket else {
                    feed(.stageFileStored(sha256: file.sha256, failure: "the connection to the broker is closed"))
                    continue
                }
                do {
                    try socket.send(multipart: ClientMessage(service: StageFiles.service, body: [Array(file.sha256.utf8)]).frames)
                } catch {
                    feed(.stageFileStored(sha256: file.sha256, failure: "cannot ask the broker for it: \(error)"))
                }
            }
        case .storeStageFile(let file, let content):
            let failure = configuration.stageFileCache.map { $0.store(file, content: content) } ?? "no stage file cache"
            if failure == nil, let cache = configuration.stageFileCache {
                logger.info("fetched stage file \(file.path) (\(file.size) bytes, SHA-256 \(file.sha256.prefix(12))…) into \(cache.location(of: file))")
            }
            feed(.stageFileStored(sha256: file.sha256, failure: failure))
        case .reportUnserved(let node, let stages):
            // Advice for the broker's log and events; the core moves on without an answer after a while.
            try? topologySocket?.send(multipart: ClientMessage(service: UnservedReport.service, body: UnservedReport(node: node, stages: stages).frames).frames)
        case .openSession(let plans, let aggregatorEndpoint):
            do {
                try openSession(plans, aggregatorEndpoint: aggregatorEndpoint)
                feed(.sessionOpened)
            } catch {
                closeSession(goodbye: false)
                feed(.sessionFailed("cannot open the stages' sockets: \(error)"))
            }
        case .send(let stage, let message):
            guard dealers.indices.contains(stage) else { return }
            dealerBacklogs[stage].append(message.frames)
            flushDealer(stage)
        case .pushToAggregator(let batch):
            aggregatorBacklog.append(batch.frames)
            flushAggregator()
        case .runJobs(let stage, let jobs):
            if let outcomes = pools?.run(stage: stage, jobs: jobs) {
                feed(.slotResults(stage: stage, outcomes))
            }
        case .withdrawJobs(let stage):
            feed(.jobsWithdrawn(stage: stage, pools?.withdraw(stage: stage) ?? []))
        case .scheduleTick(let instant):
            nextTick = instant
        case .reconnect:
            closeSession(goodbye: false)
        case .notice(.noAnswer(let broker)):
            // Say why, when TCP can tell: refused, no route and silence are different mistakes.
            var reason = ""
            if let endpoint = try? Endpoint(parsing: broker), let host = endpoint.host, let port = endpoint.port {
                let found = Reachability.probe(host: host, port: port, timeout: .milliseconds(500))
                if found != .accepting { reason = ": \(found)" }
            }
            logger.info("no answer from the broker at \(broker)\(reason); retrying")
        case .notice(let notice):
            log(notice)
        case .finish:
            closeSession(goodbye: true)
            finished = true
        case .fail(let error):
            closeSession(goodbye: false)
            failure = error
            finished = true
        }
    }

    private func openSession(_ plans: [StagePlan], aggregatorEndpoint: String?) throws(ZMQError) {
        closeTopologySocket()
        generation += 1
        for _ in plans {
            let dealer = try makeSocket(.stage)
            dealers.append(dealer)
            dealerBacklogs.append([])
            try dealer.connect(configuration.brokerEndpoint)
        }
        let wakeEndpoint = "inproc://lancompute-worker-slots-\(UUID().uuidString)"
        let wake = try makeSocket(.slotWake)
        try wake.bind(wakeEndpoint)
        pools = SlotPools(
            plans: plans, configuration: configuration, wake: wake, wakeEndpoint: wakeEndpoint, context: context, logger: logger)
        if let aggregatorEndpoint {
            let push = try makeSocket(.aggregator)
            aggregator = push
            try push.connect(aggregatorEndpoint)
        }
    }

    /// Sends what a stage DEALER takes now, in order, without waiting; the rest goes when it can.
    private func flushDealer(_ stage: Int) {
        do {
            while let next = dealerBacklogs[stage].first, try dealers[stage].trySend(multipart: next) {
                dealerBacklogs[stage].removeFirst()
            }
        } catch {
            feed(.sessionFailed("cannot send to the broker: \(error)"))
        }
    }

    /// Sends what the aggregator PUSH takes now, in order; each batch that left is reported to the core.
    private func flushAggregator() {
        guard let aggregator else { return }
        do {
            while let next = aggregatorBacklog.first, try aggregator.trySend(multipart: next) {
                aggregatorBacklog.removeFirst()
                feed(.aggregatorAccepted)
            }
        } catch {
            feed(.sessionFailed("cannot push to the aggregator: \(error)"))
        }
    }

    /// Closes the session's sockets and joins its slot threads. A goodbye lingers briefly (see ``goodbyeLinger``).
    private func closeSession(goodbye: Bool) {
        generation += 1
        pools?.close(within: Self.slotJoinTimeout)
        pools = nil
        for socket in dealers + [aggregator].compactMap({ $0 }) {
            if goodbye { try? socket.set(.linger, Self.goodbyeLinger) }
            socket.close()
        }
        dealers.removeAll()
        dealerBacklogs.removeAll()
        aggregator = nil
        aggregatorBacklog.removeAll()
        closeTopologySocket()
        poller = nil
    }

    private func closeTopologySocket() {
        topologySocket?.close()
        topologySocket = nil
    }

    // MARK: Sockets

    private enum Role { case topology, stage, aggregator, slotWake }

    /// Every socket of this thread is made here, from the socket factory's profile for its role.
    private func makeSocket(_ role: Role) throws(ZMQError) -> Socket {
        let sockets = SocketFactory(context: context, curve: configuration.curve.map { CurveSetup(client: $0) })
        let socket: Socket
        switch role {
        case .topology: socket = try sockets.socket(.client)
        // Credit bounds what the broker sends; the worker must never drop a REQUEST or block on a REPLY.
        case .stage: socket = try sockets.socket(.workerStage)
        case .aggregator: socket = try sockets.socket(.workerOutputs)
        case .slotWake: return try sockets.socket(.slotResults)
        }
        try connectionGuard.watch(socket)
        return socket
    }

    private func log(_ notice: WorkerNotice) {
        let message = Logger.Message(stringLiteral: notice.description)
        switch notice.level {
        case .debug: logger.debug(message)
        case .info: logger.info(message)
        case .notice: logger.notice(message)
        case .warning: logger.warning(message)
        case .error: logger.error(message)
        }
    }
}

@available(*, unavailable) extension WorkerShell: Sendable {}
