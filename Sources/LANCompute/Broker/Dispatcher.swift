// The broker's pure state: stage queues, the worker table, credit-based dispatch, and each item's lifecycle.

/// A ZeroMQ routing id, as the broker's ROUTER sees a peer.
public typealias PeerID = [UInt8]

/// An item as the broker tracks it between stages.
///
/// A class, not a struct: an item moves between queues, the in-flight table and retry lists
/// many times, and a reference moves with one retain where a struct copied every field.
/// Only the broker thread touches it.
final class BrokerItem {
    var id: UInt64
    var stage: Int
    var payload: [UInt8]
    /// Attempts started so far at this stage.
    var attempts: Int = 0
    var priority: Int16 = 0
    var enqueuedAt: ContinuousClock.Instant
    /// When the source item this one derives from entered the pipeline (for end-to-end latency).
    var bornAt: ContinuousClock.Instant
    var deadline: ContinuousClock.Instant?
    var key: [UInt8] = []
    /// Set for items submitted by an MDP client: the outputs go back to it instead of downstream.
    var client: ClientReturn?
    var lastError = ""
    var lastStderr = ""

    init(id: UInt64, stage: Int, payload: [UInt8], enqueuedAt: ContinuousClock.Instant, bornAt: ContinuousClock.Instant) {
        self.id = id
        self.stage = stage
        self.payload = payload
        self.enqueuedAt = enqueuedAt
        self.bornAt = bornAt
    }
}

struct ClientReturn {
    var peer: PeerID
    var service: String
}

/// What the broker loop must do after the dispatcher changed state.
enum DispatchEffect {
    case send(peer: PeerID, frames: [[UInt8]])
    /// Like `send`, with the peer's routing id already the first frame (built in one go on the item path).
    case sendRouted(peer: PeerID, frames: [[UInt8]])
    case deadLettered(item: BrokerItem, stageName: String, reason: String)
    case workerJoined(peer: PeerID, stageName: String, capabilities: Capabilities)
    case workerLeft(peer: PeerID, stageName: String, reason: String, requeued: Int)
    case nodeJoined(node: String, host: String, capabilities: Capabilities)
    case nodeLeft(node: String, reason: String)
    case protocolError(peer: PeerID, reason: String)
}

/// Per-stage counters, cumulative over the run.
struct StageCounters {
    var received = 0
    var completed = 0
    var failed = 0
    var retried = 0
    var deadLettered = 0
}

/// Receives per-item facts as they happen (for metrics); called on the broker thread.
/// Stages are named by their index in the topology, to keep string hashing off the item path.
protocol DispatchObserver: AnyObject {
    func itemReceived(stage: Int)
    func itemCompleted(stage: Int, latency: Duration)
    func itemFailed(stage: Int)
    func itemRetried(stage: Int)
    func itemDeadLettered(stage: Int)
    /// A final output reached the sink, `latency` after its source item entered the pipeline.
    func itemInSink(latency: Duration)
}

/// The broker's state machine: no sockets, no clocks of its own; the loop feeds it and drains `effects`.
final class Dispatcher {
    struct StageState {
        var spec: StageSpec
        var downstream: [Int]
        var queue = PriorityFIFO<BrokerItem>()
        /// Live workers serving this stage, in the order they registered.
        var workers: [PeerID] = []
        var counters = StageCounters()
        var isFinal: Bool { downstream.isEmpty }
        var isGrouped: Bool { spec.groupBy != nil }
    }

    final class WorkerRecord {
        let peer: PeerID
        let stage: Int
        let capabilities: Capabilities
        let credit: Int
        let batch: Int
        let speaksLANCompute: Bool
        let node: String
        let hash: UInt64
        let preference: Int
        var inFlight: Set<UInt64> = []
        var lastSeen: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        var completed = 0
        /// Items pinned to this worker by group-by, waiting for its credit.
        var pinned = FIFOQueue<BrokerItem>()

        init(peer: PeerID, stage: Int, capabilities: Capabilities, preference: Int, now: ContinuousClock.Instant) {
            self.peer = peer
            self.stage = stage
            self.capabilities = capabilities
            self.credit = capabilities.credit
            self.batch = capabilities.batch
            self.speaksLANCompute = capabilities.isLANCompute
            self.node = capabilities["node"] ?? peer.map { String($0, radix: 16) }.joined()
            self.hash = ItemID.mix(fnv1a(peer))
            self.preference = preference
            self.lastSeen = now
            self.lastSent = now
        }

        var freeCredit: Int { credit - inFlight.count }
    }

    /// A class for the same reason as `BrokerItem`: the in-flight table is on every item's path.
    final class InFlight {
        let item: BrokerItem
        let peer: PeerID
        let sentAt: ContinuousClock.Instant
        /// The worker replied; for a final stage the item now waits for the aggregator's ack.
        var replied = false
        var repliedAt: ContinuousClock.Instant?

        init(item: BrokerItem, peer: PeerID, sentAt: ContinuousClock.Instant) {
            self.item = item
            self.peer = peer
            self.sentAt = sentAt
        }
    }

    private(set) var stages: [StageState]
    private let stageIndex: [String: Int]
    private(set) var workers: [PeerID: WorkerRecord] = [:]
    private(set) var inFlight: [UInt64: InFlight] = [:]
    /// Items created and not yet finished (in the sink, replied to a client, or dead-lettered).
    private(set) var pending = 0
    private(set) var deadLetteredTotal = 0
    /// Final outputs the broker itself must forward to the aggregator (from workers that did not PUSH them).
    var aggregatorOutbox: [ItemOutcome] = []
    var effects: [DispatchEffect] = []
    /// The broker loop, which owns this dispatcher and outlives it.
    unowned(unsafe) var observer: (any DispatchObserver)?

    let heartbeatInterval: Duration
    let liveness: Int
    /// How long a final-stage item may wait for the aggregator's ack before it is sent again.
    let ackTimeout: Duration
    private var nodes: [String: Set<PeerID>] = [:]

    init(topology: Topology, ackTimeout: Duration = .seconds(30)) {
        var index: [String: Int] = [:]
        for (position, stage) in topology.stages.enumerated() { index[stage.name] = position }
        stageIndex = index
        stages = topology.stages.map { spec in
            StageState(spec: spec, downstream: topology.downstream(of: spec.name).compactMap { index[$0.name] })
        }
        heartbeatInterval = topology.broker.heartbeatInterval
        liveness = max(1, topology.broker.heartbeatLiveness)
        self.ackTimeout = ackTimeout
    }

    /// Stages that read the source.
    var entryStages: [Int] { stages.indices.filter { stages[$0].spec.from.isEmpty } }

    func stage(named name: String) -> Int? { stageIndex[name] }

    var queuedTotal: Int { stages.reduce(0) { $0 + queuedCount(stage: $1) } }

    func queuedCount(stage: StageState) -> Int {
        stage.queue.count + stage.workers.reduce(0) { $0 + (workers[$1]?.pinned.count ?? 0) }
    }

    func inFlightCount(stage: Int) -> Int {
        stages[stage].workers.reduce(0) { $0 + (workers[$1]?.inFlight.count ?? 0) }
    }

    // MARK: Items in

    /// Accepts a new item from the source into every entry stage.
    func accept(id: UInt64, payload: [UInt8], now: ContinuousClock.Instant) {
        let entries = entryStages
        for stage in entries {
            // With several entry stages each gets its own copy, with its own id.
            let itemID = entries.count == 1 ? id : ItemID.derived(parent: id, stageIndex: stage, outputIndex: 0)
            enqueue(BrokerItem(id: itemID, stage: stage, payload: payload, enqueuedAt: now, bornAt: now), now: now)
            pending += 1
        }
    }

    /// Accepts an MDP client's request for one stage; the reply goes back to the client.
    func acceptClientRequest(stage: Int, id: UInt64, payload: [UInt8], client: ClientReturn, now: ContinuousClock.Instant) {
        let item = BrokerItem(id: id, stage: stage, payload: payload, enqueuedAt: now, bornAt: now)
        item.client = client
        enqueue(item, now: now)
        pending += 1
    }

    private func enqueue(_ item: BrokerItem, now: ContinuousClock.Instant) {
        // Read single fields of the stage: a copy of the whole stage state would share its
        // queue's storage and make the append below copy the queue.
        item.enqueuedAt = now
        if let deadline = stages[item.stage].spec.deadline { item.deadline = now + deadline } else { item.deadline = nil }
        if item.attempts == 0 {
            // Priority flows downstream: an item carries the highest priority of the stages it passed.
            item.priority = max(item.priority, Int16(clamping: stages[item.stage].spec.priority))
            stages[item.stage].counters.received += 1
            observer?.itemReceived(stage: item.stage)
            if let groupBy = stages[item.stage].spec.groupBy { item.key = groupBy.key(of: item.payload) ?? [] }
        }
        place(item)
    }

    /// Puts an item in its stage queue, or (group-by) in the queue of the worker its key is pinned to.
    private func place(_ item: BrokerItem, atFront: Bool = false) {
        if stages[item.stage].isGrouped, let worker = pinnedWorker(for: item.key, stage: item.stage) {
            if atFront { worker.pinned.prepend(item) } else { worker.pinned.append(item) }
            return
        }
        if atFront {
            stages[item.stage].queue.prepend(item, priority: item.priority)
        } else {
            stages[item.stage].queue.append(item, priority: item.priority)
        }
    }

    /// Rendezvous hashing: the live worker with the highest score for the key; keys move only when workers come and go.
    private func pinnedWorker(for key: [UInt8], stage: Int) -> WorkerRecord? {
        let keyHash = fnv1a(key)
        var best: WorkerRecord?
        var bestScore: UInt64 = 0
        for peer in stages[stage].workers {
            guard let worker = workers[peer] else { continue }
            let score = ItemID.mix(keyHash ^ worker.hash)
            if best == nil || score > bestScore {
                best = worker
                bestScore = score
            }
        }
        return best
    }

    /// Re-pins every queued item of a grouped stage after its worker set changed.
    private func repin(stage: Int) {
        guard stages[stage].isGrouped else { return }
        var items = stages[stage].queue.drain()
        for peer in stages[stage].workers {
            if let worker = workers[peer] { items += worker.pinned.drain() }
        }
        for item in items { place(item) }
    }

    // MARK: Dispatch

    /// Sends queued items to workers with free credit, preferred workers first.
    func dispatch(now: ContinuousClock.Instant) {
        for stage in stages.indices where !stages[stage].workers.isEmpty {
            if stages[stage].isGrouped {
                for peer in stages[stage].workers {
                    guard let worker = workers[peer] else { continue }
                    while worker.freeCredit > 0, !worker.pinned.isEmpty {
                        var batch: [BrokerItem] = []
                        let room = min(worker.batch, worker.freeCredit)
                        while batch.count < room, let item = worker.pinned.popFirst() {
                            if let item = admit(item, now: now) { batch.append(item) }
                        }
                        if batch.isEmpty { break }
                        send(batch, to: worker, now: now)
                    }
                }
                continue
            }
            while !stages[stage].queue.isEmpty, let worker = bestWorker(stage: stage) {
                var batch: [BrokerItem] = []
                let room = min(worker.batch, worker.freeCredit)
                while batch.count < room, let item = stages[stage].queue.popFirst() {
                    if let item = admit(item, now: now) { batch.append(item) }
                }
                if batch.isEmpty { break }
                send(batch, to: worker, now: now)
            }
        }
    }

    /// Dead-letters an item whose deadline passed; otherwise returns it.
    private func admit(_ item: BrokerItem, now: ContinuousClock.Instant) -> BrokerItem? {
        if let deadline = item.deadline, now >= deadline {
            item.lastError = "deadline of \(stages[item.stage].spec.deadline!) passed before the item could be processed"
            deadLetter(item, reason: item.lastError)
            return nil
        }
        return item
    }

    private func bestWorker(stage: Int) -> WorkerRecord? {
        var best: WorkerRecord?
        for peer in stages[stage].workers {
            guard let worker = workers[peer], worker.freeCredit > 0 else { continue }
            guard let current = best else {
                best = worker
                continue
            }
            if worker.preference > current.preference
                || (worker.preference == current.preference && worker.freeCredit > current.freeCredit) {
                best = worker
            }
        }
        return best
    }

    private func send(_ batch: [BrokerItem], to worker: WorkerRecord, now: ContinuousClock.Instant) {
        let sent = batch
        for index in sent.indices {
            sent[index].attempts += 1
            worker.inFlight.insert(sent[index].id)
            inFlight[sent[index].id] = InFlight(item: sent[index], peer: worker.peer, sentAt: now)
        }
        worker.lastSent = now
        if worker.speaksLANCompute {
            // A worker of a final stage PUSHes outputs to the aggregator; a client's items must come back
            // in the REPLY instead, so they travel in a REQUEST of their own that says so.
            let groups = sent.contains { $0.client != nil }
                ? [sent.filter { $0.client == nil }, sent.filter { $0.client != nil }] : [sent]
            for items in groups where !items.isEmpty {
                let header = RequestBatch.headerFrame(items.lazy.map { item in
                    ItemHeader(id: item.id, attempt: UInt16(clamping: item.attempts), priority: item.priority, key: item.key)
                }, count: items.count)
                let address = items[0].client == nil
                    ? ItemToken(id: items[0].id, attempt: UInt16(clamping: items[0].attempts)).bytes
                    : MDP.clientItemsAddress
                // The REQUEST's frames, routing id first, built once: this is the item path.
                var frames: [[UInt8]] = [worker.peer, [], MDP.workerHeader, [MDP.Command.request.rawValue], address, [], header]
                frames.reserveCapacity(7 + items.count)
                for item in items { frames.append(item.payload) }
                effects.append(.sendRouted(peer: worker.peer, frames: frames))
            }
        } else {
            for item in sent {
                let token = ItemToken(id: item.id, attempt: UInt16(clamping: item.attempts))
                effects.append(.send(peer: worker.peer, frames: WorkerMessage.request(client: token.bytes, body: [item.payload]).frames))
            }
        }
    }

    /// A send to `peer` failed (it is gone): its items go back to the queue untouched.
    func sendFailed(peer: PeerID, now: ContinuousClock.Instant) {
        removeWorker(peer, reason: "unreachable", now: now, countAttempt: false)
    }

    // MARK: Worker messages

    /// Handles one worker-protocol message from `peer`.
    func handle(_ message: WorkerMessage, from peer: PeerID, now: ContinuousClock.Instant) {
        guard let worker = workers[peer] else {
            if case .ready(let service, let capabilities) = message {
                register(peer: peer, service: service, capabilities: capabilities ?? Capabilities(), now: now)
            } else if case .disconnect = message {
                // Nothing to do: the peer was not registered.
            } else {
                effects.append(.protocolError(peer: peer, reason: "LC3002: \(messageName(message)) from a worker that never sent READY"))
                effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
            }
            return
        }
        worker.lastSeen = now
        switch message {
        case .ready:
            effects.append(.protocolError(peer: peer, reason: "LC3002: READY from a worker that is already registered"))
            removeWorker(peer, reason: "protocol error: second READY", now: now, countAttempt: true)
            effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
        case .heartbeat:
            break
        case .disconnect:
            // A worker that says goodbye did not fail its items: they go back without using an attempt.
            removeWorker(peer, reason: "disconnected", now: now, countAttempt: false)
        case .request:
            effects.append(.protocolError(peer: peer, reason: "LC3002: REQUEST sent by a worker"))
        case .reply(let client, let body):
            handleReply(body[...], client: client, from: worker, now: now)
        }
    }

    /// A REPLY's body, given as the frames after its empty frame (the broker's fast path skips
    /// building a `WorkerMessage` for the commonest message).
    func handleReply(from peer: PeerID, client: [UInt8], body: ArraySlice<[UInt8]>, now: ContinuousClock.Instant) {
        guard let worker = workers[peer] else {
            effects.append(.protocolError(peer: peer, reason: "LC3002: REPLY from a worker that never sent READY"))
            effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
            return
        }
        worker.lastSeen = now
        handleReply(body, client: client, from: worker, now: now)
    }

    private func handleReply(_ body: ArraySlice<[UInt8]>, client: [UInt8], from worker: WorkerRecord, now: ContinuousClock.Instant) {
        do {
            if worker.speaksLANCompute {
                let reply = try ReplyBatch(frames: body)
                for outcome in reply.outcomes { complete(outcome, from: worker, now: now) }
            } else {
                let token = try ItemToken(bytes: client)
                complete(ItemOutcome(id: token.id, attempt: token.attempt, status: .completed(outputs: Array(body))), from: worker, now: now)
            }
        } catch {
            effects.append(.protocolError(peer: worker.peer, reason: "LC3001: bad REPLY: \(error)"))
        }
    }

    private func messageName(_ message: WorkerMessage) -> String {
        switch message {
        case .ready: "READY"
        case .request: "REQUEST"
        case .reply: "REPLY"
        case .heartbeat: "HEARTBEAT"
        case .disconnect: "DISCONNECT"
        }
    }

    private func register(peer: PeerID, service: String, capabilities: Capabilities, now: ContinuousClock.Instant) {
        guard !service.hasPrefix("mmi.") else {
            effects.append(.protocolError(peer: peer, reason: "LC3002: READY for reserved service \(service)"))
            effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
            return
        }
        guard let stage = stageIndex[service] else {
            effects.append(.protocolError(peer: peer, reason: "LC3003: READY for unknown stage \"\(service)\""))
            effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
            return
        }
        let spec = stages[stage].spec
        if let unmet = spec.requires.unmetReason(capabilities) {
            effects.append(.protocolError(peer: peer, reason: "LC3003: worker cannot serve stage \(service): \(unmet)"))
            effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames))
            return
        }
        let worker = WorkerRecord(peer: peer, stage: stage, capabilities: capabilities, preference: spec.prefers.score(capabilities), now: now)
        workers[peer] = worker
        stages[stage].workers.append(peer)
        if nodes[worker.node, default: []].isEmpty {
            effects.append(.nodeJoined(node: worker.node, host: capabilities["host"] ?? "unknown", capabilities: capabilities))
        }
        nodes[worker.node, default: []].insert(peer)
        effects.append(.workerJoined(peer: peer, stageName: service, capabilities: capabilities))
        repin(stage: stage)
    }

    private func removeWorker(_ peer: PeerID, reason: String, now: ContinuousClock.Instant, countAttempt: Bool) {
        guard let worker = workers.removeValue(forKey: peer) else { return }
        stages[worker.stage].workers.removeAll { $0 == peer }
        var requeued = 0
        for id in worker.inFlight {
            guard let entry = inFlight.removeValue(forKey: id) else { continue }
            requeued += 1
            if countAttempt {
                fail(entry.item, message: "worker \(hex(peer)) \(reason) while processing the item", stderr: "", now: now)
            } else {
                entry.item.attempts -= 1
                place(entry.item, atFront: true)
            }
        }
        // Final-stage items whose outputs may not have left the dead worker: send them again.
        let unconfirmed = inFlight.filter { $0.value.peer == peer && $0.value.replied }
        for (id, entry) in unconfirmed {
            inFlight[id] = nil
            requeued += 1
            retry(entry.item, now: now)
        }
        for item in worker.pinned.drain() { place(item) }
        repin(stage: worker.stage)
        effects.append(.workerLeft(peer: peer, stageName: stages[worker.stage].spec.name, reason: reason, requeued: requeued))
        nodes[worker.node]?.remove(peer)
        if nodes[worker.node]?.isEmpty == true {
            nodes[worker.node] = nil
            effects.append(.nodeLeft(node: worker.node, reason: reason))
        }
    }

    // MARK: Outcomes

    private func complete(_ outcome: ItemOutcome, from worker: WorkerRecord, now: ContinuousClock.Instant) {
        // A late reply for an item taken back, or for another attempt than the one in flight: ignore it,
        // and keep the item (and the worker's credit for it) until the attempt in flight is answered.
        guard worker.inFlight.contains(outcome.id), let entry = inFlight[outcome.id], entry.peer == worker.peer,
              entry.item.attempts == Int(outcome.attempt) else { return }
        worker.inFlight.remove(outcome.id)
        let stage = entry.item.stage
        switch outcome.status {
        case .failed(let message, let stderr):
            inFlight[outcome.id] = nil
            stages[stage].counters.failed += 1
            observer?.itemFailed(stage: stage)
            fail(entry.item, message: message, stderr: stderr, now: now)
        case .completed(let outputs):
            worker.completed += 1
            recordCompletion(entry.item, now: now)
            if let client = entry.item.client {
                inFlight[outcome.id] = nil
                effects.append(.send(peer: client.peer, frames: ClientMessage(service: client.service, body: outputs.isEmpty ? [[]] : outputs).frames))
                finish()
            } else if stages[stage].isFinal {
                // Forward to the aggregator and wait for its ack before the item counts as done.
                entry.replied = true
                entry.repliedAt = now
                aggregatorOutbox.append(ItemOutcome(id: outcome.id, attempt: outcome.attempt, status: .completed(outputs: outputs)))
            } else {
                inFlight[outcome.id] = nil
                forward(entry.item, outputs: outputs, now: now)
            }
        case .deliveredToAggregator:
            worker.completed += 1
            recordCompletion(entry.item, now: now)
            entry.replied = true
            entry.repliedAt = now
        }
    }

    private func recordCompletion(_ item: BrokerItem, now: ContinuousClock.Instant) {
        stages[item.stage].counters.completed += 1
        observer?.itemCompleted(stage: item.stage, latency: now - item.enqueuedAt)
    }

    /// Sends each output of a completed item to every downstream stage, with derived stable ids.
    private func forward(_ item: BrokerItem, outputs: [[UInt8]], now: ContinuousClock.Instant) {
        for downstream in stages[item.stage].downstream {
            for (index, output) in outputs.enumerated() {
                let child = BrokerItem(id: ItemID.derived(parent: item.id, stageIndex: downstream, outputIndex: index),
                                       stage: downstream, payload: output, enqueuedAt: now, bornAt: item.bornAt)
                child.priority = item.priority
                enqueue(child, now: now)
                pending += 1
            }
        }
        finish()
    }

    /// The aggregator has the outputs of these final-stage items in the sink.
    func acknowledge(_ ids: [UInt64], now: ContinuousClock.Instant) {
        for id in ids {
            guard let entry = inFlight[id] else { continue }  // a duplicate, already done
            inFlight[id] = nil
            observer?.itemInSink(latency: now - entry.item.bornAt)
            if !entry.replied {
                // The ack overtook the worker's REPLY: the item is done; free the credit now.
                workers[entry.peer]?.inFlight.remove(id)
                if let worker = workers[entry.peer] {
                    worker.completed += 1
                    recordCompletion(entry.item, now: now)
                }
            }
            finish()
        }
    }

    private func fail(_ item: BrokerItem, message: String, stderr: String, now: ContinuousClock.Instant) {
        item.lastError = message
        item.lastStderr = stderr
        let maxAttempts = max(1, stages[item.stage].spec.maxAttempts)
        if item.attempts >= maxAttempts {
            deadLetter(item, reason: "failed \(item.attempts) of \(maxAttempts) attempts; last error: \(message)")
        } else {
            retry(item, now: now)
        }
    }

    private func retry(_ item: BrokerItem, now: ContinuousClock.Instant) {
        stages[item.stage].counters.retried += 1
        observer?.itemRetried(stage: item.stage)
        place(item, atFront: true)
    }

    private func deadLetter(_ item: BrokerItem, reason: String) {
        stages[item.stage].counters.deadLettered += 1
        deadLetteredTotal += 1
        observer?.itemDeadLettered(stage: item.stage)
        effects.append(.deadLettered(item: item, stageName: stages[item.stage].spec.name, reason: reason))
        if let client = item.client {
            effects.append(.send(peer: client.peer, frames: ClientMessage(service: client.service, body: [Array("error".utf8), Array(reason.utf8)]).frames))
        }
        finish()
    }

    private func finish() {
        pending -= 1
    }

    // MARK: Time

    /// Heartbeats, expiry of silent workers, attempt timeouts and ack timeouts.
    func tick(now: ContinuousClock.Instant) {
        let expiry = heartbeatInterval * liveness
        for worker in Array(workers.values) {
            if now - worker.lastSeen > expiry {
                let stage = stages[worker.stage].spec.name
                removeWorker(worker.peer, reason: "expired (silent for more than \(expiry) on stage \(stage))", now: now, countAttempt: true)
            } else if now - worker.lastSent >= heartbeatInterval {
                worker.lastSent = now
                effects.append(.send(peer: worker.peer, frames: WorkerMessage.heartbeat.frames))
            }
        }
        var expired: [(UInt64, InFlight, String)] = []
        for (id, entry) in inFlight {
            if entry.replied {
                if let repliedAt = entry.repliedAt, now - repliedAt > ackTimeout {
                    expired.append((id, entry, "ack"))
                }
            } else if let timeout = stages[entry.item.stage].spec.timeout, now - entry.sentAt > timeout {
                expired.append((id, entry, "timeout"))
            }
        }
        for (id, entry, kind) in expired {
            inFlight[id] = nil
            workers[entry.peer]?.inFlight.remove(id)
            if kind == "ack" {
                // Counted as a failed attempt: a worker that cannot reach the aggregator would
                // otherwise get the same item back forever.
                let stage = entry.item.stage
                stages[stage].counters.failed += 1
                observer?.itemFailed(stage: stage)
                fail(entry.item, message: "the aggregator never confirmed the outputs within \(ackTimeout) of worker \(hex(entry.peer))'s reply; can that worker reach the aggregator endpoint?", stderr: "", now: now)
            } else {
                let stage = entry.item.stage
                stages[stage].counters.failed += 1
                observer?.itemFailed(stage: stage)
                fail(entry.item, message: "timed out after \(stages[stage].spec.timeout!)", stderr: "", now: now)
            }
        }
        // Queued items past their deadline go now, not only when a worker would have taken them.
        for stage in stages.indices where stages[stage].spec.deadline != nil {
            let late = stages[stage].queue.removeAll { item in item.deadline.map { now >= $0 } ?? false }
            for item in late { _ = admit(item, now: now) }
        }
    }

    /// Dead-letters every item not yet finished — queued, pinned or in flight — with `reason`.
    func abandonAll(reason: String) {
        var items: [BrokerItem] = []
        for stage in stages.indices { items += stages[stage].queue.drain() }
        for worker in workers.values {
            items += worker.pinned.drain()
            worker.inFlight.removeAll()
        }
        items += inFlight.values.map(\.item)
        inFlight.removeAll()
        for item in items {
            item.lastError = reason
            deadLetter(item, reason: reason)
        }
    }

    /// Tells every worker to go (broker shutting down).
    func disconnectAll() {
        for peer in workers.keys { effects.append(.send(peer: peer, frames: WorkerMessage.disconnect.frames)) }
    }

    /// A node's view for metrics: workers, items in flight, completed, last heartbeat.
    func nodeSummaries(now: ContinuousClock.Instant) -> [(node: String, host: String, workers: Int, inFlight: Int, completed: Int, heartbeatAge: Duration, capabilities: Capabilities)] {
        nodes.keys.sorted().compactMap { node in
            let records = nodes[node]!.compactMap { workers[$0] }
            guard let first = records.first else { return nil }
            let lastSeen = records.map(\.lastSeen).max()!
            return (node, first.capabilities["host"] ?? "unknown", records.count, records.reduce(0) { $0 + $1.inFlight.count },
                    records.reduce(0) { $0 + $1.completed }, now - lastSeen, first.capabilities)
        }
    }
}

func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01B3
    }
    return hash
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined()
}
