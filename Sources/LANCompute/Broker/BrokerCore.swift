// The broker's pure core: stage queues, the worker table, credit-based dispatch and each item's lifecycle, as inputs in and actions out.

/// A ZeroMQ routing id, as the broker's ROUTER sees a peer.
public typealias PeerID = [UInt8]

/// An item as the broker tracks it between stages.
///
/// A class, not a struct: an item moves between queues, the in-flight table and retry lists
/// many times, and a reference moves with one retain where a struct copied every field.
/// Only the broker thread touches it. Queued items are the broker's memory, so the fields
/// most items never use (deadline, key, client, last error) live in a side object made on
/// first use: an item costs its payload plus some 80 bytes. A long queue keeps its plain items
/// without an object at all (``StageQueue``).
final class BrokerItem {
    var id: UInt64
    /// The id of the source item this one descends from (itself for a source item): the journal
    /// records when every descendant of a source item has settled, so a resumed run can skip it.
    var root: UInt64
    var payload: [UInt8]
    var enqueuedAt: Tick
    /// When the source item this one derives from entered the pipeline (for end-to-end latency).
    var bornAt: Tick
    private var rare: Rare?
    private var stageIndex: Int32
    private var attemptCount: Int16 = 0
    var priority: Int16 = 0

    var stage: Int {
        get { Int(stageIndex) }
        set { stageIndex = Int32(newValue) }
    }

    /// Attempts started so far at this stage.
    var attempts: Int {
        get { Int(attemptCount) }
        set { attemptCount = Int16(clamping: newValue) }
    }

    /// The fields few items need.
    private final class Rare {
        var deadline: ContinuousClock.Instant?
        var key: [UInt8] = []
        var client: ClientReturn?
        var lastError = ""
        var lastStderr = ""
        var suspect = false
        var failedOn: [String] = []
    }

    init(id: UInt64, stage: Int, payload: [UInt8], enqueuedAt: Tick, bornAt: Tick, root: UInt64? = nil) {
        self.id = id
        self.root = root ?? id
        self.stageIndex = Int32(stage)
        self.payload = payload
        self.enqueuedAt = enqueuedAt
        self.bornAt = bornAt
    }

    /// First attempt and none of the rare fields set: a queue may keep it as its id and payload alone.
    var isPlain: Bool { rare == nil && attemptCount == 0 }

    private var rareFields: Rare {
        if let rare { return rare }
        let made = Rare()
        rare = made
        return made
    }

    var deadline: ContinuousClock.Instant? {
        get { rare?.deadline }
        set { if newValue != nil || rare != nil { rareFields.deadline = newValue } }
    }

    /// The group-by key, empty when the stage has none.
    var key: [UInt8] {
        get { rare?.key ?? [] }
        set { if !newValue.isEmpty || rare != nil { rareFields.key = newValue } }
    }

    /// Set for items submitted by an MDP client: the outputs go back to it instead of downstream.
    var client: ClientReturn? {
        get { rare?.client }
        set { if newValue != nil || rare != nil { rareFields.client = newValue } }
    }

    /// It was running on a worker that died: it may be what kills workers.
    var suspect: Bool {
        get { rare?.suspect ?? false }
        set { if newValue || rare != nil { rareFields.suspect = newValue } }
    }

    /// The worker processes (nodes) its attempts at this stage failed on: a retry goes elsewhere when it can.
    var failedOn: [String] {
        get { rare?.failedOn ?? [] }
        set { if !newValue.isEmpty || rare != nil { rareFields.failedOn = newValue } }
    }

    var lastError: String {
        get { rare?.lastError ?? "" }
        set { rareFields.lastError = newValue }
    }

    var lastStderr: String {
        get { rare?.lastStderr ?? "" }
        set { rareFields.lastStderr = newValue }
    }
}

/// Where the outputs of an MDP client's request go back to.
struct ClientReturn: Equatable {
    var peer: PeerID
    var service: String
    /// The request's size as counted against ``WorkerLimits/clientRequestBytes`` until it is answered.
    var bytes: Int = 0
}

/// Why a worker left the broker's table: an enumerated reason, with a sentence of detail beside it.
/// What the broker lets a worker hold, whatever the worker announces (Docs/security.md, Hardening).
public struct WorkerLimits: Sendable, Equatable {
    /// The most items one worker connection may hold in flight: a larger `credit` capability is cut
    /// to this (or to the stage's `credit`, when set and smaller), so no worker can take every item of a stage.
    public var maxCredit: Int
    /// A worker that holds items and finishes none of them for this long is expired and its items
    /// go to others, even on a stage without a `timeout`; nil: never.
    public var stallTimeout: Duration?
    /// The most bytes of MDP client requests the broker holds (queued or in flight) at once; a request
    /// beyond them is answered `error` (LC3008) at once instead of queued, so clients cannot exhaust its memory.
    public var clientRequestBytes: Int

    public static let defaultMaxCredit = 1024
    public static let defaultStallTimeout: Duration = .seconds(600)
    public static let defaultClientRequestBytes = 256 << 20

    public init(maxCredit: Int = defaultMaxCredit, stallTimeout: Duration? = defaultStallTimeout,
                clientRequestBytes: Int = defaultClientRequestBytes) {
        self.maxCredit = max(1, maxCredit)
        self.stallTimeout = stallTimeout
        self.clientRequestBytes = max(0, clientRequestBytes)
    }
}

public enum WorkerLeaveReason: String, Sendable, Equatable, CaseIterable {
    /// The worker said goodbye (DISCONNECT).
    case disconnect
    /// The worker was silent for longer than heartbeat interval x liveness.
    case expired
    /// A send to the worker failed: its connection is gone.
    case unreachable
    /// The worker broke the protocol (a second READY).
    case protocolError = "protocol-error"
    /// The broker is shutting down.
    case brokerStopping = "broker-stopping"
    /// The worker's key was removed from authorized_keys (or lost the worker role).
    case revoked
}

/// Why an item went back to a queue for another attempt.
public enum RetryReason: String, Sendable, Equatable {
    /// The attempt failed (the handler threw, the child crashed).
    case failed
    /// The attempt ran past the stage's timeout.
    case timeout
    /// The worker holding the item died or was expired.
    case workerLost = "worker-lost"
    /// The worker said goodbye before finishing the item; the attempt is not counted.
    case workerLeft = "worker-left"
    /// The aggregator never confirmed the item's outputs.
    case ackTimeout = "ack-timeout"
    /// The worker handed it back unstarted (owner policy); the attempt is not counted.
    case handedBack = "handed-back"
}

/// Why an item was given up on.
public enum DeadLetterReason: String, Sendable, Equatable {
    /// Every allowed attempt failed.
    case attemptsExhausted = "attempts-exhausted"
    /// Its stage's deadline passed before a worker could take it.
    case deadlinePassed = "deadline-passed"
    /// The run stopped before the item was finished.
    case runStopped = "run-stopped"
    /// The run ended (the source failed) before the item was finished.
    case runEnded = "run-ended"
    /// The item was larger than the broker takes; it never entered the pipeline.
    case tooLarge = "too-large"
}

/// How an item settled, as the journal records it.
enum Settlement: UInt8, Equatable, Sendable {
    /// The aggregator may write its outputs (it will, unless the process dies first).
    case admitted = 1
    /// The aggregator acknowledged its outputs in the sink.
    case inSink = 2
    /// It was dead-lettered (attempts exhausted, deadline passed).
    case deadLettered = 3
}

/// Final outputs the aggregator holds and asks to write.
struct OfferedOutput: Equatable {
    var id: UInt64
    var epoch: UInt32
    var attempt: UInt16
    /// The key of the connection that PUSHed them (ZAP's User-Id); empty without CURVE.
    var sender: String = ""
}

/// One item of a REQUEST the core asks the shell to send.
typealias DispatchedItem = RequestBatch.Item

/// How a REQUEST to a worker is framed.
enum RequestForm: Equatable {
    /// A LANCompute worker: one batch, whose `client` frame is the first item's token, or
    /// ``MDP/clientItemsAddress`` when the items came from MDP clients and must come back in the REPLY.
    case batch(forClients: Bool)
    /// A plain MDP/0.1 worker: one item, its token in the `client` frame.
    case plain
}

/// An item given up on, with what the dead-letter file records of it.
struct DeadLetter {
    var id: UInt64
    var stage: Int
    var stageName: String
    var payload: [UInt8]
    var attempts: Int
    var reason: DeadLetterReason
    /// The sentence that explains `reason` for this item.
    var detail: String
    var lastError: String
    var lastStderr: String
}

/// A worker as it registered, for the shell's log and events.
struct JoinedWorker {
    var peer: PeerID
    var stageName: String
    var node: String
    var host: String
    var credit: Int
    var capabilities: Capabilities
}

/// What happened to the core, fed to it by the shell.
enum BrokerInput {
    /// A new item from the source, for every entry stage.
    case accepted(id: UInt64, payload: [UInt8])
    /// An item the shell took responsibility for but will not process (too large): it goes
    /// straight to the dead letters, recorded at the first entry stage, where it would have gone.
    case rejected(id: UInt64, payload: [UInt8], reason: DeadLetterReason, detail: String)
    /// An MDP client's request for one stage; the outputs go back to `client`.
    case clientRequest(stage: Int, id: UInt64, payload: [UInt8], client: PeerID, service: String)
    /// A decoded worker-protocol message from `peer`, whose connection authenticated with `key`
    /// (ZAP's User-Id; empty without CURVE). A worker's key is the one its READY came with.
    case worker(peer: PeerID, message: WorkerMessage, key: String = "")
    /// These keys lost the worker role (authorized_keys changed): their workers are let go.
    case keysRevoked(Set<String>)
    /// Workers PUSHed the outputs of these final-stage items to the aggregator, which asks
    /// whether it may write them: only outputs of items still in flight in this run may be.
    case outputsOffered([OfferedOutput])
    /// The aggregator has the outputs of these final-stage items in the sink.
    case aggregatorAcknowledged(ids: [UInt64])
    /// A send to `peer` failed: its connection is gone; `unsent` are the ids of the REQUEST that failed.
    case sendFailed(peer: PeerID, unsent: [UInt64])
    /// Time passed: heartbeats, expiries, timeouts, deadlines.
    case tick
    /// Resume: these items settled (in the sink or dead-lettered) in an earlier run of the same
    /// pipeline, as its journal says. When one of them is queued again (its source item is being
    /// redone) it is not processed: it settles at once, with ``BrokerAction/itemSkipped(stage:id:)``.
    case settledEarlier(ids: [UInt64])
    /// The run is over: every unfinished item is dead-lettered with `reason`, and every worker told to go.
    case shutDown(reason: DeadLetterReason)
    /// A worker process (`node`) said which stages it does not serve, and why (`mmi.unserved`); it
    /// replaces what that node said before.
    case unservedReported(node: String, stages: [UnservedStage])
}

/// A stage with items waiting and no live worker, and what the nodes that could not serve it said.
struct UnservedStageReport: Equatable {
    var stage: Int
    var stageName: String
    /// Items waiting in its queue.
    var waiting: Int
    /// Why each node that reported it does not serve it, sorted by node.
    var reasons: [(node: String, reason: String)]
    /// Whether this is the first report of this episode (the shell logs only that one).
    var isNew: Bool

    static func == (left: Self, right: Self) -> Bool {
        left.stage == right.stage && left.stageName == right.stageName && left.waiting == right.waiting && left.isNew == right.isNew
            && left.reasons.map(\.node) == right.reasons.map(\.node) && left.reasons.map(\.reason) == right.reasons.map(\.reason)
    }
}

/// What the core asks the shell to do, and the facts metrics, events and the journal consume.
///
/// Several values per item are built, copied and switched on, so the cases that arise per item are
/// kept small and the rare large ones are `indirect` (boxed): the enum is as large as its largest
/// inline case, and each copy moves that many bytes.
enum BrokerAction {
    /// Send these items to `peer` in one REQUEST.
    case request(peer: PeerID, form: RequestForm, items: [DispatchedItem])
    case heartbeat(peer: PeerID)
    /// Answer a worker's probe at once with a HEARTBEAT carrying it back (Docs/protocol.md 7.7).
    case probeEcho(peer: PeerID, probe: UInt64)
    /// A worker's credit refresh changed what it may hold (``roundTrip``: what it measured, if it said).
    indirect case workerCreditChanged(peer: PeerID, stageName: String, from: Int, to: Int, roundTrip: Duration?)
    case disconnect(peer: PeerID)
    /// Answer an MDP client: its outputs, or `["error", reason]`.
    indirect case clientReply(peer: PeerID, service: String, body: [[UInt8]])
    /// Final outputs the worker returned in its REPLY: the aggregator must write them (they are admitted).
    case forwardToAggregator([ItemOutcome])
    /// The answer to ``BrokerInput/outputsOffered(_:)``: the aggregator writes the admitted ones and
    /// drops the others (their item was dead-lettered, finished already, or is of another run).
    case admission(admitted: [UInt64], refused: [UInt64])

    /// What `stage` counted during one ``BrokerCore/handle(batch:at:)``: `received` items entered it for
    /// the first time, and attempts at it succeeded `latencies` microseconds after their items were
    /// queued there (one per attempt). One action per stage and call, where one per item and stage
    /// was most of the actions of a chained pipeline. Microseconds, not `Duration`s: what the
    /// histograms take, without a 128-bit division per item.
    indirect case stageCounts(stage: Int, received: Int, latencies: [UInt64])
    case attemptFailed(stage: Int)
    /// An item went back to its queue for attempt `attempt + 1`.
    case itemRetried(stage: Int, id: UInt64, attempt: Int, reason: RetryReason)
    indirect case deadLettered(DeadLetter)
    /// Final-stage items reached the sink during one ``BrokerCore/handle(batch:at:)``, each `latencies`
    /// microseconds after its source item entered the pipeline (one per item, in the order they arrived).
    indirect case itemsInSink(latencies: [UInt64])
    /// For the journal: items settled as `settlement` says during one handle call, each with the
    /// source item it descends from, in the order they settled. Emitted before the call's
    /// ``sourceItemsFinished(roots:)``, so the items come before the source items they finish.
    indirect case itemsSettled(Settlement, entries: [SettledEntry])
    /// For the journal: every item descended from these source items has settled (in the sink or
    /// dead-lettered), so a resumed run need not read them again. Not emitted for client requests, nor
    /// for items abandoned by ``BrokerInput/shutDown(reason:)`` (they are unfinished, not settled).
    indirect case sourceItemsFinished(roots: [UInt64])
    /// An item queued at `stage` had settled in an earlier run (``BrokerInput/settledEarlier(ids:)``): not processed again.
    case itemSkipped(stage: Int, id: UInt64)

    indirect case workerJoined(JoinedWorker)
    indirect case workerLeft(peer: PeerID, stageName: String, reason: WorkerLeaveReason, detail: String, requeued: Int)
    indirect case nodeJoined(node: String, host: String, capabilities: Capabilities)
    indirect case nodeLeft(node: String, reason: WorkerLeaveReason, detail: String)
    /// A node began (`yielding`) or stopped yielding to its owner; `otherLoad`: the cores the rest of its machine used.
    indirect case nodeYielding(node: String, host: String, yielding: Bool, otherLoad: Double?)
    /// A peer broke the protocol; `code` is its LC3xxx code.
    indirect case protocolError(peer: PeerID, code: ProtocolErrorCode, detail: String)
    /// A worker the broker had already let go of answered late: ignored, and told to register again.
    case lateMessage(peer: PeerID)
    /// Outputs offered for an item in flight to another key than the one that PUSHed them: refused,
    /// and the shell counts an unauthorized attempt.
    indirect case impostorOutcome(id: UInt64, sender: String)
    /// A worker answered for an item of another run (a broker restarted under it): refused.
    indirect case foreignOutcome(peer: PeerID, id: UInt64, epoch: UInt32)
    /// A stage has had items waiting and no live worker for ``BrokerCore/unservedAfter`` (or, once
    /// so, nodes gave new reasons): its items wait, and the operator should know why.
    indirect case stageUnserved(UnservedStageReport)
    /// A stage reported unserved has a worker again.
    indirect case stageServed(stage: Int, stageName: String)
    /// A worker's circuit breaker at a stage changed state (Docs/cluster.md, Health).
    indirect case breakerChanged(BreakerChange)
    /// The core wants a `.tick` no later than this.
    case scheduleTick(at: ContinuousClock.Instant)
}

/// A circuit breaker's transition, for the log, the events and the metrics.
struct BreakerChange: Equatable {
    /// The worker connection serving the stage for that node, when one is registered.
    var peer: PeerID?
    var node: String
    var stage: Int
    var stageName: String
    /// The state it moved to.
    var state: BreakerState
    /// Failed attempts among the outcomes weighed (for an opening: those that opened it).
    var failures: Int
    var outcomes: Int
    /// For an opening: how long the quarantine lasts.
    var cooldown: Duration?
}

/// A worker's breaker at a stage, as `lancompute nodes` shows it.
struct BreakerSummary: Equatable {
    var stage: String
    var state: BreakerState
    /// Until the probe, while open.
    var probeIn: Duration?
    var failures: Int
    var outcomes: Int
}

/// The broker's state machine: no sockets and no clock of its own. The shell feeds it inputs
/// with the time they happened and carries out the actions it returns.
final class BrokerCore {
    private struct StageState {
        let spec: StageSpec
        /// The stages its outputs go to; for a chain's head, those of the chain's last member.
        var downstream: [Int] {
            didSet { isFinal = downstream.isEmpty }
        }
        /// A chain's members, head first, when this stage heads one; empty otherwise.
        var chain: [Int] = []
        /// The head of the chain this stage runs inside, when it is a member but not the head: it has
        /// no queue and no workers of its own.
        var chainHead: Int?
        /// Longest one attempt may run: the stage's timeout, or for a chain the sum of its members'.
        var timeout: Duration?
        /// The highest priority of a chain's members after the head: its outputs carry it on.
        var chainPriority = 0
        var queue: StageQueue
        /// Live workers serving this stage, in the order they registered.
        var workers: [PeerID] = []
        /// Those that may take items now (``WorkerRecord/canTake``), by preference score, highest first:
        /// a pick looks only at these, and at no more than ``BrokerCore/pickCandidates`` of them.
        var open: [OpenLevel] = []
        /// Those neither quarantined by their breaker nor yielding to their machine's owner.
        var available = 0
        /// Items pinned by group-by to its workers, waiting for their credit.
        var pinnedCount = 0
        /// Since when items have waited with no worker to take them; nil: served, or nothing waits.
        var unservedSince: ContinuousClock.Instant?
        /// The reasons last reported as unserved; nil: not reported in this episode.
        var reportedReasons: [String: String]?
        /// Stored, not computed: read through `stages[index]` on every item's path, a computed
        /// property made a copy of the whole stage state (its queue and worker list retained and
        /// released) for each read.
        private(set) var isFinal: Bool
        let isGrouped: Bool

        init(spec: StageSpec, downstream: [Int], timeout: Duration?, queue: StageQueue) {
            self.spec = spec
            self.downstream = downstream
            self.timeout = timeout
            self.queue = queue
            isFinal = downstream.isEmpty
            isGrouped = spec.groupBy != nil
        }
    }

    /// The open workers of a stage that share one preference score.
    private struct OpenLevel {
        let preference: Int
        var members = RotatingSet<PeerID, WorkerRecord>()
    }

    private final class WorkerRecord {
        let peer: PeerID
        let stage: Int
        /// Registrations before it: among equally good workers the one registered first wins a pick.
        let sequence: Int
        /// In its stage's `open` set; kept by ``BrokerCore/updateStanding(_:)``.
        var isOpen = false
        /// Counted in its stage's `available`; kept by ``BrokerCore/updateStanding(_:)``.
        var isAvailable = false
        /// As announced on READY, with the dynamic values of the latest capabilities refresh.
        var capabilities: Capabilities {
            didSet { isYielding = capabilities["yielding"] == "true" }
        }
        /// Items it may hold: announced on READY, changed by a credit refresh (Docs/protocol.md 7.7),
        /// always within `creditLimit`. Lowered below what it holds, it is sent nothing until it is under.
        var credit: Int
        /// The broker's bound on this worker's credit: `--max-credit`, or the stage's `credit` when smaller.
        let creditLimit: Int
        /// The batch size it announced on READY; what a REQUEST carries is also cut to the credit.
        let announcedBatch: Int
        var batch: Int { max(1, min(announcedBatch, credit)) }
        /// The round trip the worker last reported with a credit refresh; nil: none reported.
        var roundTrip: Duration?
        /// Items the worker works on at once; the rest of its credit waits in its own queue.
        let slots: Int
        let speaksLANCompute: Bool
        let node: String
        let host: String
        let hash: UInt64
        let preference: Int
        /// Where `spread` counts it: the `host` capability, or its node when it announced none.
        let spreadHost: String
        let cores: Int
        /// Its speed discounted by its host's load; refreshed with the load.
        var effectiveSpeed: EffectiveSpeed?
        /// The key its connection authenticated with (ZAP's User-Id); empty without CURVE.
        let key: String
        /// The in-flight entries sent to it, in the order they were sent: the worker takes its items
        /// in this order, which is how the core knows when one started. Entries it no longer holds
        /// (``InFlight/holder`` cleared: answered, taken back, acknowledged) are dropped lazily from the
        /// front, and all at once when they outnumber the held ones, so a stuck first item cannot make
        /// the queue (and the items it keeps alive) grow without bound.
        private(set) var sendOrder = FIFOQueue<InFlight>()
        /// Entries of `sendOrder` it holds: what its credit is measured against.
        private(set) var holding = 0
        /// Those of them it has started (``InFlight/startedAt`` set), by the core's reckoning of its
        /// slots: kept as entries start and leave, so a send or a reply need not walk `sendOrder`.
        private(set) var started = 0
        var lastSeen: Tick
        var lastSent: Tick
        /// When the worker last finished an item it held, or took its first one while holding none:
        /// heartbeats keep a worker registered, only this shows it gets anything done.
        var lastProgress: Tick
        var completed = 0
        /// Items pinned to this worker by group-by, waiting for its credit.
        var pinned = FIFOQueue<BrokerItem>()
        /// Its process's breaker at this stage; nil when the stage has `breaker: false`.
        let breaker: CircuitBreaker?

        init(peer: PeerID, stage: Int, sequence: Int, capabilities: Capabilities, creditLimit: Int, preference: Int, key: String,
             breaker: CircuitBreaker?, now: Tick) {
            self.peer = peer
            self.sequence = sequence
            self.breaker = breaker
            self.key = key
            self.stage = stage
            self.capabilities = capabilities
            self.isYielding = capabilities["yielding"] == "true"
            let credit = min(capabilities.credit, creditLimit)
            self.credit = credit
            self.creditLimit = creditLimit
            self.announcedBatch = capabilities.batch
            self.slots = min(capabilities["slots"].flatMap(Int.init).map { max(1, $0) } ?? credit, credit)
            self.speaksLANCompute = capabilities.isLANCompute
            self.node = capabilities["node"] ?? "mdp-\(hex(peer))"
            self.host = capabilities["host"] ?? "unknown"
            self.hash = ItemID.mix(fnv1a(peer))
            self.preference = preference
            self.spreadHost = capabilities["host"] ?? node
            self.cores = capabilities["cores"].flatMap(Int.init) ?? 1
            self.effectiveSpeed = EffectiveSpeed(capabilities)
            self.lastSeen = now
            self.lastSent = now
            self.lastProgress = now
        }

        var freeCredit: Int { isYielding ? 0 : credit - holding }
        /// Its machine's owner is busy (`yielding=true`, owner policy): it is alive and gets nothing new.
        /// Kept with `capabilities`, not looked up: every pick asks it of each worker it weighs.
        private(set) var isYielding: Bool

        var placement: PlacementCandidate {
            PlacementCandidate(preference: preference, credit: credit, inFlight: holding, host: spreadHost, cores: cores,
                               speed: effectiveSpeed)
        }

        /// Whether an item may be sent to it now: free credit, and a breaker that is not open (or
        /// probing with nothing in flight). Dispatch consults this for every stage, grouped or not.
        var canTake: Bool { freeCredit > 0 && breakerAdmits }

        /// Whether its breaker (if any) lets an item through now: closed, or probing with nothing in flight.
        var breakerAdmits: Bool { breaker?.admits(holding: holding) ?? true }

        /// Items one REQUEST may carry now: a batch within its free credit, one while its breaker probes.
        var room: Int {
            let room = min(batch, freeCredit)
            return breaker?.room(room) ?? room
        }

        /// Its breaker is open: it gets none of the stage's items until the cool-down ends.
        var isQuarantined: Bool { breaker?.isOpen ?? false }

        /// An entry sent to it, not yet started: it holds it until ``release(_:)``.
        func hold(_ entry: InFlight) {
            precondition(entry.startedAt == nil, "an entry is held before it starts, so `started` counts it once")
            entry.holder = self
            sendOrder.append(entry)
            holding += 1
        }

        /// One of its entries has started, at `now`.
        func markStarted(_ entry: InFlight, at now: Tick) {
            precondition(entry.holder === self && entry.startedAt == nil, "an entry starts once, while held")
            entry.startedAt = now
            started += 1
        }

        /// It no longer holds the entry (answered, taken back, acknowledged).
        func release(_ entry: InFlight) {
            precondition(entry.holder === self, "an entry is released by the worker that holds it")
            entry.holder = nil
            holding -= 1
            if entry.startedAt != nil { started -= 1 }
            if sendOrder.count > 2 * holding + 64 { _ = sendOrder.removeAll { $0.holder !== self } }
        }

        /// Drops the entries it no longer holds from the front of `sendOrder`.
        func dropReleasedFront() {
            while let first = sendOrder.first, first.holder !== self { _ = sendOrder.popFirst() }
        }

        /// Releases every entry it holds and returns them in the order they were sent.
        func releaseAll() -> [InFlight] {
            let held = sendOrder.drain().filter { $0.holder === self }
            for entry in held { entry.holder = nil }
            holding = 0
            started = 0
            return held
        }
    }

    private struct BreakerKey: Hashable, Comparable {
        var node: String
        var stage: Int
        static func < (left: Self, right: Self) -> Bool { (left.node, left.stage) < (right.node, right.stage) }
    }

    /// A class for the same reason as `BrokerItem`: the in-flight table is on every item's path.
    private final class InFlight {
        let item: BrokerItem
        /// The worker it was sent to, also once it no longer holds it: its routing id and key are
        /// read through it, one reference where copies of both were two per item sent.
        let sentTo: WorkerRecord
        /// The worker that holds the item, while it does: cleared when the worker answers it, gives it
        /// back, loses it or the aggregator's ack overtakes the answer. A worker finds its own items
        /// through these entries (``WorkerRecord/sendOrder``), not through a set of their ids.
        var holder: WorkerRecord?
        /// The routing id of the worker it was sent to.
        var peer: PeerID { sentTo.peer }
        /// The key of the worker it was sent to: only that key's outputs may be written for it.
        var key: String { sentTo.key }
        /// When the worker (by the core's reckoning of its slots) started the item; the stage timeout runs from here.
        var startedAt: Tick?
        /// The worker replied; for a final stage the item now waits for the aggregator's ack.
        var repliedAt: Tick?
        var replied: Bool { repliedAt != nil }
        /// The aggregator was allowed to write the item's outputs: from here on it cannot be retried,
        /// timed out or dead-lettered, only acknowledged.
        var admitted = false

        init(item: BrokerItem, sentTo: WorkerRecord) {
            self.item = item
            self.sentTo = sentTo
        }
    }

    private var stages: [StageState]
    private let stageIndex: [String: Int]
    private var workers: [PeerID: WorkerRecord] = [:]
    /// Workers registered so far (``WorkerRecord/sequence``).
    private var registrations = 0
    /// The candidates of the pick being made, kept to reuse its storage.
    private var candidates: [WorkerRecord] = []
    private var inFlight = IDTable<InFlight>()
    private var nodes: [String: Set<PeerID>] = [:]
    /// Workers let go of recently (expired, unreachable), so a late word from one is not a protocol error.
    private var departed = FIFOQueue<PeerID>()
    private var departedSet = Set<PeerID>()
    private var actions: [BrokerAction] = []
    /// Per stage, what this `handle` call counted so far (``BrokerAction/stageCounts(stage:received:latencies:)``).
    private var counts: [(received: Int, latencies: [UInt64])] = []
    /// The stages with something in `counts`, in the order they first counted.
    private var countedStages: [Int] = []
    /// Items settled during this `handle` call, by ``Settlement`` (its raw value less one).
    private var settledNow: [[SettledEntry]] = [[], [], []]
    /// End-to-end latencies of the items that reached the sink during this `handle` call.
    private var inSinkNow: [UInt64] = []
    /// Source items finished during this `handle` call.
    private var finishedNow: [UInt64] = []
    /// The `now` of the call being handled, as a tick: what the stamps on items and workers are made of.
    private var nowTick = Tick(nanoseconds: 0)

    /// Items created and not yet finished (in the sink, replied to a client, or dead-lettered).
    private(set) var pending = 0
    /// Unsettled descendants of each source item in progress that has others than itself: its
    /// children, or its copies when there are several entry stages (client requests are not counted).
    /// A source item that is its own only descendant (its id is its root: the sole entry stage's
    /// copy, or one rejected at intake) has no entry, so an item that goes from the source straight
    /// to the sink costs the table nothing; ``finish(_:settled:)`` finishes its source item when it
    /// finds no entry for it, and ``forward(_:outputs:now:)`` enters it with its children.
    private var unsettled: [UInt64: Int32] = [:]
    /// Items that settled in an earlier run (resume): skipped when queued again, then forgotten.
    private var settledEarlier = Set<UInt64>()
    /// What each node said it cannot serve (stage index to reason), and when it last said so.
    private var unservedReports: [String: (stages: [Int: String], at: ContinuousClock.Instant)] = [:]
    /// Each worker process's breaker at each stage it served; kept while it is away, so a worker that
    /// registers again finds its quarantine, and forgotten two longest cool-downs after it was last used
    /// with no worker of its node left at its stage.
    private var breakers: [BreakerKey: CircuitBreaker] = [:]

    /// How long a stage may have items waiting with no worker before it is reported unserved: long
    /// enough for the workers of a starting cluster to register, short enough to be noticed.
    let unservedAfter: Duration
    /// How long a node's report is believed once the node has no worker left (a worker that serves
    /// nothing asks again every few seconds, and reports again each time).
    static let unservedReportLifetime = Duration.seconds(30)
    /// The timeout of an attempt at an external stage that sets none: a plain MDP worker that never
    /// answers would otherwise hold its item (and, at credit 1, the worker) forever.
    static let externalStageTimeout = Duration.seconds(60)
    /// The most workers a pick weighs (``bestWorker(stage:where:)``): with thousands of workers a pick
    /// costs the same as with a hundred, and the cursor of each preference level moves on past the
    /// ones weighed, so over successive picks every open worker is weighed in turn. Few, because
    /// each worker weighed is a few cache misses (its record, its in-flight set): with 64, weighing
    /// was a fifth of the broker's time at 5,000 workers, with most picks between equal workers.
    static let pickCandidates = 16

    let heartbeatInterval: Duration
    let liveness: Int
    /// How long a final-stage item may wait for the aggregator's ack before it is sent again.
    let ackTimeout: Duration
    /// How often the core wants a tick.
    let tickInterval: Duration
    /// This run's epoch: it travels with every item, and outcomes of another epoch are refused.
    let epoch: UInt32
    let limits: WorkerLimits
    /// Bytes of client requests held, queued or in flight (``WorkerLimits/clientRequestBytes``).
    private var clientBytes = 0

    /// `compactQueuesAfter`: how long a stage queue grows before it keeps plain items compactly (``StageQueue``).
    init(topology: Topology, epoch: UInt32 = 1, ackTimeout: Duration = .seconds(30), unservedAfter: Duration = .seconds(2),
         limits: WorkerLimits = WorkerLimits(), compactQueuesAfter: Int = StageQueue.defaultCompactAfter) {
        self.epoch = epoch
        self.unservedAfter = unservedAfter
        self.limits = limits
        var index: [String: Int] = [:]
        for (position, stage) in topology.stages.enumerated() { index[stage.name] = position }
        stageIndex = index
        var states = topology.stages.enumerated().map { position, spec in
            StageState(spec: spec, downstream: topology.downstream(of: spec.name).compactMap { index[$0.name] }, timeout: spec.timeout,
                       queue: StageQueue(stage: position, compactAfter: compactQueuesAfter))
        }
        // Decided once from the topology: each chain is dispatched as its head, and answered as its tail.
        for names in ChainPlan(topology).chains {
            let members = names.compactMap { index[$0] }
            guard let head = members.first, let tail = members.last, members.count > 1 else { continue }
            states[head].chain = members
            states[head].downstream = states[tail].downstream
            for member in members.dropFirst() {
                states[member].chainHead = head
                states[head].chainPriority = max(states[head].chainPriority, states[member].spec.priority)
            }
            let timeouts = members.compactMap { states[$0].spec.timeout }
            states[head].timeout = timeouts.count == members.count ? timeouts.reduce(.zero, +) : nil
        }
        stages = states
        entryStages = states.indices.filter { states[$0].spec.from.isEmpty }
        counts = Array(repeating: (0, []), count: states.count)
        heartbeatInterval = topology.broker.heartbeatInterval
        liveness = max(1, topology.broker.heartbeatLiveness)
        self.ackTimeout = ackTimeout
        tickInterval = min(heartbeatInterval / 2, .milliseconds(250))
    }

    deinit {
        // A worker and the entries it holds refer to each other until they are released.
        for worker in workers.values { _ = worker.releaseAll() }
    }

    // MARK: The one entry point

    /// Applies one input at `now` and returns what the shell must do, in order.
    func handle(_ input: BrokerInput, at now: ContinuousClock.Instant) -> [BrokerAction] {
        handle(batch: CollectionOfOne(input), at: now)
    }

    /// Applies inputs that arrived together (one drain of a socket), then dispatches once.
    func handle(batch inputs: some Sequence<BrokerInput>, at now: ContinuousClock.Instant) -> [BrokerAction] {
        nowTick = Tick(now)
        var shutDown = false
        for input in inputs {
            apply(input, at: now)
            if case .shutDown = input { shutDown = true }
        }
        if !shutDown { dispatch(now: now) }
        for stage in countedStages {
            actions.append(.stageCounts(stage: stage, received: counts[stage].received, latencies: counts[stage].latencies))
            counts[stage] = (0, [])
        }
        countedStages.removeAll(keepingCapacity: true)
        for settlement in [Settlement.deadLettered, .admitted, .inSink] where !settledNow[Int(settlement.rawValue) - 1].isEmpty {
            actions.append(.itemsSettled(settlement, entries: settledNow[Int(settlement.rawValue) - 1]))
            settledNow[Int(settlement.rawValue) - 1] = []
        }
        if !inSinkNow.isEmpty {
            actions.append(.itemsInSink(latencies: inSinkNow))
            inSinkNow = []
        }
        if !finishedNow.isEmpty {
            actions.append(.sourceItemsFinished(roots: finishedNow))
            finishedNow = []
        }
        defer { actions.removeAll(keepingCapacity: true) }
        return actions
    }

    /// Records for the journal that an item settled (``BrokerAction/itemsSettled(_:entries:)``).
    private func settled(_ id: UInt64, root: UInt64, as settlement: Settlement) {
        settledNow[Int(settlement.rawValue) - 1].append(SettledEntry(id: id, root: root))
    }

    /// Counts an item entering `stage` for the first time.
    private func countReceived(stage: Int) {
        if counts[stage].received == 0 && counts[stage].latencies.isEmpty { countedStages.append(stage) }
        counts[stage].received += 1
    }

    /// Counts a successful attempt at `stage`, `latency` after its item was queued there.
    private func countCompleted(stage: Int, latency: UInt64) {
        if counts[stage].received == 0 && counts[stage].latencies.isEmpty { countedStages.append(stage) }
        counts[stage].latencies.append(latency)
    }

    private func apply(_ input: BrokerInput, at now: ContinuousClock.Instant) {
        switch input {
        case .accepted(let id, let payload):
            accept(id: id, payload: payload, now: now)
        case .rejected(let id, let payload, let reason, let detail):
            let item = BrokerItem(id: id, stage: entryStages.first ?? 0, payload: payload, enqueuedAt: nowTick, bornAt: nowTick)
            item.lastError = detail
            pending += 1  // deadLetter finishes it, and its source item with it (it is its own root)
            deadLetter(item, reason: reason, detail: detail)
        case .clientRequest(let stage, _, _, let client, let service) where stages[stage].chainHead != nil:
            let chain = stages[stages[stage].chainHead!].chain.map { stages[$0].spec.name }
            actions.append(.clientReply(peer: client, service: service, body: [
                Array("error".utf8),
                Array("stage \(service) runs inside chain \(ChainPlan.describe(chain)): send the request to \(chain[0]), or set chain: false on \(service)".utf8),
            ]))
        case .clientRequest(let stage, let id, let payload, let client, let service):
            guard clientBytes + payload.count <= limits.clientRequestBytes else {
                actions.append(.clientReply(peer: client, service: service, body: [Array("error".utf8), Array(
                    "LC3008: the broker holds \(clientBytes) bytes of client requests and takes at most \(limits.clientRequestBytes); retry when earlier requests are answered".utf8)]))
                actions.append(.protocolError(peer: client, code: .clientRequestsFull, detail: "request of \(payload.count) bytes for \(service) refused: \(clientBytes) bytes of client requests held"))
                return
            }
            clientBytes += payload.count
            let item = BrokerItem(id: id, stage: stage, payload: payload, enqueuedAt: nowTick, bornAt: nowTick)
            item.client = ClientReturn(peer: client, service: service, bytes: payload.count)
            enqueue(item, now: now)
            pending += 1
        case .worker(let peer, let message, let key):
            handle(message, from: peer, key: key, now: now)
        case .keysRevoked(let keys):
            let revoked = workers.values.filter { keys.contains($0.key) }.map(\.peer).sorted { $0.lexicographicallyPrecedes($1) }
            for peer in revoked {
                removeWorker(peer, reason: .revoked, detail: "its key is no longer authorized", now: now, countAttempt: false)
                actions.append(.disconnect(peer: peer))
            }
        case .outputsOffered(let offers):
            admit(offers)
        case .aggregatorAcknowledged(let ids):
            acknowledge(ids, now: now)
        case .sendFailed(let peer, let unsent):
            // The items of the REQUEST that failed never reached the worker: they go back untouched.
            // Every other item it held counts an attempt, however it died, so an item that kills
            // its worker ends in the dead letters after max-attempts.
            if let worker = workers[peer] {
                for id in unsent.reversed() {
                    guard let entry = inFlight[id], entry.holder === worker else { continue }
                    inFlight.removeValue(forKey: id)
                    worker.release(entry)
                    entry.item.attempts -= 1
                    place(entry.item, atFront: true)
                }
            }
            removeWorker(peer, reason: .unreachable, detail: "its connection is gone", now: now, countAttempt: true)
        case .tick:
            tick(now: now)
            // Wake exactly when the next worker would expire, so a dead one is noticed at
            // heartbeat-interval x liveness, not up to a tick later.
            let expiry = heartbeatInterval * liveness
            let nextExpiry = workers.values.lazy.map(\.lastSeen).min().map { $0.instant + expiry + .milliseconds(1) }
            actions.append(.scheduleTick(at: min(now + tickInterval, max(now, nextExpiry ?? now + tickInterval))))
        case .settledEarlier(let ids):
            settledEarlier.formUnion(ids)
        case .shutDown(let reason):
            abandonAll(reason: reason)
            for peer in workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) { actions.append(.disconnect(peer: peer)) }
        case .unservedReported(let node, let reported):
            var byStage: [Int: String] = [:]
            for entry in reported { if let stage = stageIndex[entry.stage] { byStage[stage] = entry.reason } }
            unservedReports[node] = (byStage, now)
            checkUnserved(now: now)
        }
    }

    // MARK: Unserved stages

    /// The timeout of one attempt at `stage`: its own, or for an external stage ``externalStageTimeout``.
    func attemptTimeout(stage: Int) -> Duration? {
        // A chain's head carries the sum of its members' timeouts.
        if let timeout = stages[stage].timeout { return timeout }
        if case .external = stages[stage].spec.handler { return Self.externalStageTimeout }
        return nil
    }

    /// What the nodes that reported `stage` said, sorted by node; reports of nodes long gone are dropped first.
    private func reasons(for stage: Int) -> [(node: String, reason: String)] {
        unservedReports.keys.sorted().compactMap { node in unservedReports[node]?.stages[stage].map { (node, $0) } }
    }

    /// What the nodes said, and for each registered worker whose breaker is open, that it is quarantined; by node.
    private func unservedReasons(for stage: Int) -> [(node: String, reason: String)] {
        var all = reasons(for: stage)
        for peer in stages[stage].workers {
            guard let worker = workers[peer], let breaker = worker.breaker, breaker.isOpen else { continue }
            all.append((worker.node, "quarantined by the circuit breaker (cool-down \(seconds(breaker.cooldown)), then a probe)"))
        }
        return all.sorted { $0.node < $1.node }
    }

    /// A stage has a worker that may take its items: its unserved episode ends, and one reported
    /// unserved is reported served.
    private func markServed(stage: Int) {
        stages[stage].unservedSince = nil
        guard stages[stage].reportedReasons != nil else { return }
        stages[stage].reportedReasons = nil
        actions.append(.stageServed(stage: stage, stageName: stages[stage].spec.name))
    }

    /// Reports each stage whose items have waited with no worker for ``unservedAfter``, once per
    /// episode and again when the reasons change; and each such stage that has a worker again.
    private func checkUnserved(now: ContinuousClock.Instant) {
        for (node, report) in unservedReports where nodes[node]?.isEmpty ?? true && now - report.at > Self.unservedReportLifetime {
            unservedReports[node] = nil
        }
        for stage in stages.indices {
            // A stage whose every worker is quarantined by its breaker waits like one with none.
            if stages[stage].workers.contains(where: { workers[$0]?.isQuarantined == false }) {
                markServed(stage: stage)
                continue
            }
            let waiting = stages[stage].queue.count
            guard waiting > 0 || stages[stage].reportedReasons != nil else {
                stages[stage].unservedSince = nil
                continue
            }
            let since = stages[stage].unservedSince ?? now
            stages[stage].unservedSince = since
            guard now - since >= unservedAfter || stages[stage].reportedReasons != nil else { continue }
            let current = unservedReasons(for: stage)
            let keyed = Dictionary(current.map { ($0.node, $0.reason) }, uniquingKeysWith: { first, _ in first })
            guard stages[stage].reportedReasons != keyed else { continue }
            let isNew = stages[stage].reportedReasons == nil
            stages[stage].reportedReasons = keyed
            actions.append(.stageUnserved(UnservedStageReport(
                stage: stage, stageName: stages[stage].spec.name, waiting: waiting, reasons: current, isNew: isNew)))
        }
    }

    /// The stages reported unserved now, for `mmi.nodes` and the metrics snapshot.
    var unservedStages: [UnservedStageReport] {
        stages.indices.compactMap { stage in
            guard stages[stage].reportedReasons != nil else { return nil }
            return UnservedStageReport(stage: stage, stageName: stages[stage].spec.name, waiting: stages[stage].queue.count,
                                       reasons: unservedReasons(for: stage), isNew: false)
        }
    }

    // MARK: Read-only views for the shell (progress, metrics, MMI)

    var stageNames: [String] { stages.map(\.spec.name) }
    /// Stages that read the source: fixed with the topology, and read for every accepted item.
    let entryStages: [Int]
    func stage(named name: String) -> Int? { stageIndex[name] }
    /// For a chain member, whether its chain's head has workers: they run it.
    func hasWorkers(stage: Int) -> Bool { !stages[stages[stage].chainHead ?? stage].workers.isEmpty }
    func isRegistered(_ peer: PeerID) -> Bool { workers[peer] != nil }
    var inFlightIsEmpty: Bool { inFlight.isEmpty }
    var queuedTotal: Int { stages.indices.reduce(0) { $0 + queuedCount(stage: $1) } }

    func queuedCount(stage: Int) -> Int {
        stages[stage].queue.count + stages[stage].pinnedCount
    }

    func inFlightCount(stage: Int) -> Int {
        stages[stage].workers.reduce(0) { $0 + (workers[$1]?.holding ?? 0) }
    }

    /// A node's view for metrics: workers, items in flight, completed, last heartbeat.
    func nodeSummaries(now: ContinuousClock.Instant) -> [NodeSummary] {
        nodes.keys.sorted().compactMap { node in
            let records = nodes[node]!.compactMap { workers[$0] }
            guard let first = records.first else { return nil }
            let lastSeen = records.map(\.lastSeen).max()!
            return NodeSummary(node: node, host: first.host, workers: records.count, inFlight: records.reduce(0) { $0 + $1.holding },
                               completed: records.reduce(0) { $0 + $1.completed }, heartbeatAge: Tick(now) - lastSeen, capabilities: first.capabilities,
                               stages: Set(records.flatMap { servedStages(of: $0) }).sorted(),
                               credits: Dictionary(records.map { (stages[$0.stage].spec.name, $0.credit) }, uniquingKeysWith: +),
                               roundTrip: records.compactMap(\.roundTrip).min(),
                               breakers: records.compactMap { breakerSummary(of: $0, now: now) }.sorted { $0.stage < $1.stage })
        }
    }

    /// The stages a worker runs: its own, or every member of the chain it heads.
    private func servedStages(of worker: WorkerRecord) -> [String] {
        let chain = stages[worker.stage].chain
        return (chain.isEmpty ? [worker.stage] : chain).map { stages[$0].spec.name }
    }

    // MARK: Items in

    private func accept(id: UInt64, payload: [UInt8], now: ContinuousClock.Instant) {
        let entries = entryStages
        // The sole entry stage's copy is the source item itself, counted nowhere (``unsettled``). With
        // several, every copy is counted before the first is queued, so the source item cannot finish
        // while another copy is still to come (a copy that settled in an earlier run settles at once).
        if entries.count > 1 { unsettled[id, default: 0] += Int32(entries.count) }
        for stage in entries {
            // With several entry stages each gets its own copy, with its own id.
            let itemID = entries.count == 1 ? id : ItemID.derived(parent: id, stageIndex: stage, outputIndex: 0)
            pending += 1
            enqueue(BrokerItem(id: itemID, stage: stage, payload: payload, enqueuedAt: nowTick, bornAt: nowTick, root: id), now: now)
        }
    }

    /// The first item of a stage's queue.
    private func popQueued(stage: Int) -> BrokerItem? {
        stages[stage].queue.popFirst()?.item
    }

    /// Every item of a stage's queue, first to last.
    private func drainQueue(stage: Int) -> [BrokerItem] {
        stages[stage].queue.drain().map(\.item)
    }

    private func enqueue(_ item: BrokerItem, now: ContinuousClock.Instant) {
        // Read single fields of the stage: a copy of the whole stage state would share its
        // queue's storage and make the append below copy the queue.
        item.enqueuedAt = nowTick
        if item.attempts == 0, !settledEarlier.isEmpty, settledEarlier.remove(item.id) != nil {
            // Its outputs reached the sink (or it was dead-lettered) before a restart: not again.
            actions.append(.itemSkipped(stage: item.stage, id: item.id))
            finish(item, settled: nil)
            return
        }
        if let deadline = stages[item.stage].spec.deadline {
            item.deadline = now + deadline
        } else if item.deadline != nil {
            item.deadline = nil
        }
        if item.attempts == 0 {
            // Priority flows downstream: an item carries the highest priority of the stages it passed.
            item.priority = max(item.priority, Int16(clamping: stages[item.stage].spec.priority))
            countReceived(stage: item.stage)
            if let groupBy = stages[item.stage].spec.groupBy { item.key = groupBy.key(of: item.payload) ?? [] }
        }
        place(item)
    }

    /// Puts an item in its stage queue, or (group-by) in the queue of the worker its key is pinned to.
    private func place(_ item: BrokerItem, atFront: Bool = false) {
        if stages[item.stage].isGrouped, let worker = pinnedWorker(for: item.key, stage: item.stage, avoiding: item.failedOn) {
            if atFront { worker.pinned.prepend(item) } else { worker.pinned.append(item) }
            stages[item.stage].pinnedCount += 1
            return
        }
        if !atFront, stages[item.stage].queue.takesCompactly(item) {
            stages[item.stage].queue.append(compactly: item, priority: item.priority)
            return
        }
        if atFront {
            stages[item.stage].queue.prepend(item, priority: item.priority)
        } else {
            stages[item.stage].queue.append(item, priority: item.priority)
        }
    }

    /// Rendezvous hashing: the live worker with the highest score for the key; keys move only when workers
    /// come and go, or a breaker opens or probes. A quarantined worker has no keys; a retry leaves the
    /// workers in `avoiding` (where it failed) when another can take it. Nil: every worker is quarantined.
    private func pinnedWorker(for key: [UInt8], stage: Int, avoiding: [String] = []) -> WorkerRecord? {
        if !avoiding.isEmpty, let elsewhere = pinnedWorker(for: key, stage: stage, where: { !avoiding.contains($0.node) }) {
            return elsewhere
        }
        return pinnedWorker(for: key, stage: stage, where: { _ in true })
    }

    private func pinnedWorker(for key: [UInt8], stage: Int, where eligible: (WorkerRecord) -> Bool) -> WorkerRecord? {
        let keyHash = fnv1a(key)
        var best: WorkerRecord?
        var bestScore: UInt64 = 0
        for peer in stages[stage].workers {
            guard let worker = workers[peer], !worker.isQuarantined, eligible(worker) else { continue }
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
        var items = drainQueue(stage: stage)
        for peer in stages[stage].workers {
            if let worker = workers[peer] { items += worker.pinned.drain() }
        }
        stages[stage].pinnedCount = 0
        for item in items { place(item) }
    }

    // MARK: Dispatch

    /// Sends queued items to workers with free credit, preferred workers first.
    private func dispatch(now: ContinuousClock.Instant) {
        for stage in stages.indices where !stages[stage].workers.isEmpty {
            if stages[stage].isGrouped {
                for peer in stages[stage].workers {
                    guard let worker = workers[peer] else { continue }
                    while worker.canTake, !worker.pinned.isEmpty {
                        var batch: [BrokerItem] = []
                        let room = worker.room
                        while batch.count < room, let item = worker.pinned.popFirst() {
                            stages[stage].pinnedCount -= 1
                            if let item = admit(item, now: now) { batch.append(item) }
                        }
                        if batch.isEmpty { break }
                        send(batch, to: worker, now: now)
                    }
                }
                continue
            }
            // Retries that failed on the worker at hand wait here while another worker qualifies.
            var passedOver: [BrokerItem] = []
            while !stages[stage].queue.isEmpty, case let (worker, limit)? = bestWorker(stage: stage) {
                var batch: [BrokerItem] = []
                let room = min(worker.room, limit)
                while batch.count < room, let item = popQueued(stage: stage) {
                    if !item.failedOn.isEmpty, item.failedOn.contains(worker.node), anotherQualifies(for: item, besides: worker) {
                        passedOver.append(item)
                        continue
                    }
                    // A suspect (it was running on a worker that died) goes only to an idle worker, alone,
                    // so two suspects never share a worker and an item that kills workers cannot take
                    // innocent items down with it more than once.
                    if item.suspect && !(batch.isEmpty && worker.holding == 0) {
                        stages[stage].queue.prepend(item, priority: item.priority)
                        break
                    }
                    if let item = admit(item, now: now) { batch.append(item) }
                    if item.suspect { break }
                }
                if batch.isEmpty { break }
                send(batch, to: worker, now: now)
            }
            // Each goes alone to the best worker it has not failed on, or back to the front to wait for one.
            var waiting: [BrokerItem] = []
            for item in passedOver {
                if let worker = bestWorker(stage: stage, where: { !item.failedOn.contains($0.node) })?.worker,
                   !item.suspect || worker.holding == 0 {
                    if let item = admit(item, now: now) { send([item], to: worker, now: now) }
                } else {
                    waiting.append(item)
                }
            }
            for item in waiting.reversed() { stages[stage].queue.prepend(item, priority: item.priority) }
        }
    }

    /// Whether a worker of the item's stage other than `worker`, not quarantined and not one the item
    /// failed on, serves the stage (with free credit now or not): then the item waits for it.
    ///
    /// Counted, not searched: the stage's available workers less those of the nodes the item failed
    /// on and `worker`, so it costs the workers of those few nodes, not all the stage's.
    private func anotherQualifies(for item: BrokerItem, besides worker: WorkerRecord) -> Bool {
        var excluded = 0
        var excludedWorker = false
        for node in Set(item.failedOn) {
            for peer in nodes[node] ?? [] {
                guard let other = workers[peer], other.stage == item.stage, other.isAvailable else { continue }
                excluded += 1
                if other === worker { excludedWorker = true }
            }
        }
        if worker.isAvailable && !excludedWorker { excluded += 1 }
        return stages[item.stage].available > excluded
    }

    /// Dead-letters an item whose deadline passed; otherwise returns it.
    private func admit(_ item: BrokerItem, now: ContinuousClock.Instant) -> BrokerItem? {
        if let deadline = item.deadline, now >= deadline {
            item.lastError = "deadline of \(seconds(stages[item.stage].spec.deadline!)) passed before the item could be processed"
            deadLetter(item, reason: .deadlinePassed, detail: item.lastError)
            return nil
        }
        return item
    }

    /// The worker for the stage's next items and how many it may take (``PlacementPicker``).
    /// `eligible`: a further condition (a retry avoids the workers it failed on).
    ///
    /// Only the stage's open workers are looked at (free credit, not yielding, breaker admitting),
    /// the highest preference level that has an eligible one first, and of that level at most
    /// ``pickCandidates`` from its cursor on: a pick costs the same whatever the number of workers.
    /// A level of at most that many is weighed whole, in registration order, so the pick is the one
    /// a scan of every worker would make. `spread` weighs every host, so it scans all the stage's workers.
    private func bestWorker(stage: Int, where eligible: (WorkerRecord) -> Bool = { _ in true }) -> (worker: WorkerRecord, limit: Int)? {
        if stages[stage].spec.spread { return spreadWorker(stage: stage, where: eligible) }
        var level = 0
        while level < stages[stage].open.count {
            let members = stages[stage].open[level].members.count
            candidates.removeAll(keepingCapacity: true)
            var looked = 0
            var stale: [WorkerRecord] = []
            while looked < members && candidates.count < Self.pickCandidates {
                let worker = stages[stage].open[level].members.value(afterCursor: looked)
                looked += 1
                // Every change of what a worker may take updates the set; this only guards it.
                guard worker.canTake else {
                    stale.append(worker)
                    continue
                }
                if eligible(worker) { candidates.append(worker) }
            }
            stages[stage].open[level].members.advanceCursor(by: looked)
            if !stale.isEmpty {
                // Removing them may remove the level: look at this index again either way.
                for worker in stale { updateStanding(worker) }
                continue
            }
            if members <= Self.pickCandidates { candidates.sort { $0.sequence < $1.sequence } }
            var picker = PlacementPicker<Int>(spread: false)
            for (index, worker) in candidates.enumerated() { picker.consider(index, worker.placement) }
            if let pick = picker.pick() {
                let worker = candidates[pick.id]
                return (worker, pick.limit ?? worker.freeCredit)
            }
            level += 1
        }
        return nil
    }

    /// ``bestWorker(stage:where:)`` for a stage with `spread`: every worker of the stage is weighed,
    /// those without free credit too, since spread compares what each host holds.
    private func spreadWorker(stage: Int, where eligible: (WorkerRecord) -> Bool) -> (worker: WorkerRecord, limit: Int)? {
        var picker = PlacementPicker<PeerID>(spread: true)
        for peer in stages[stage].workers {
            // A worker yielding to its machine's owner takes nothing new (owner policy); one whose
            // breaker is open takes nothing of this stage (health).
            guard let worker = workers[peer], !worker.isYielding, worker.breakerAdmits, eligible(worker) else { continue }
            picker.consider(peer, worker.placement)
        }
        guard let pick = picker.pick(), let worker = workers[pick.id] else { return nil }
        return (worker, pick.limit ?? worker.freeCredit)
    }

    /// Brings the worker's stage's open set and available count up to date with what the worker may
    /// do now. Called wherever its credit, its items in flight, its breaker, its yielding or its
    /// registration changes: dispatch trusts the set instead of looking at every worker.
    private func updateStanding(_ worker: WorkerRecord) {
        let registered = workers[worker.peer] === worker
        let open = registered && worker.canTake
        if open != worker.isOpen {
            worker.isOpen = open
            let stage = worker.stage
            if let level = stages[stage].open.firstIndex(where: { $0.preference == worker.preference }) {
                if open {
                    stages[stage].open[level].members.insert(worker.peer, worker)
                } else {
                    stages[stage].open[level].members.remove(worker.peer)
                    if stages[stage].open[level].members.isEmpty { stages[stage].open.remove(at: level) }
                }
            } else if open {
                var level = OpenLevel(preference: worker.preference)
                level.members.insert(worker.peer, worker)
                let position = stages[stage].open.firstIndex { $0.preference < worker.preference } ?? stages[stage].open.count
                stages[stage].open.insert(level, at: position)
            }
        }
        let available = registered && !worker.isQuarantined && !worker.isYielding
        if available != worker.isAvailable {
            worker.isAvailable = available
            stages[worker.stage].available += available ? 1 : -1
        }
    }

    private func send(_ batch: [BrokerItem], to worker: WorkerRecord, now: ContinuousClock.Instant) {
        // An idle worker's stall clock starts with the first item it gets, not when it last finished one.
        if worker.holding == 0 { worker.lastProgress = nowTick }
        for item in batch {
            item.attempts += 1
            let entry = InFlight(item: item, sentTo: worker)
            worker.hold(entry)
            // It waits in the worker's own queue unless a slot is free (the worker starts its items in send order).
            if worker.started < worker.slots { worker.markStarted(entry, at: nowTick) }
            inFlight[item.id] = entry
        }
        worker.lastSent = nowTick
        updateStanding(worker)
        func dispatched(_ item: BrokerItem) -> DispatchedItem {
            DispatchedItem(ItemHeader(id: item.id, epoch: epoch, attempt: UInt16(clamping: item.attempts), priority: item.priority, key: item.key),
                           item.payload)
        }
        guard worker.speaksLANCompute else {
            for item in batch { actions.append(.request(peer: worker.peer, form: .plain, items: [dispatched(item)])) }
            return
        }
        // A worker of a final stage PUSHes outputs to the aggregator; a client's items must come back
        // in the REPLY instead, so they travel in a REQUEST of their own that says so.
        if batch.contains(where: { $0.client != nil }) {
            let own = batch.filter { $0.client == nil }
            let clients = batch.filter { $0.client != nil }
            if !own.isEmpty { actions.append(.request(peer: worker.peer, form: .batch(forClients: false), items: own.map(dispatched))) }
            actions.append(.request(peer: worker.peer, form: .batch(forClients: true), items: clients.map(dispatched)))
        } else {
            actions.append(.request(peer: worker.peer, form: .batch(forClients: false), items: batch.map(dispatched)))
        }
    }

    /// Marks the items a worker has started since a slot of it came free.
    ///
    /// The worker takes items in the order they were sent, `slots` at a time, so the first
    /// `slots` unanswered items in send order are the ones running; the others wait in its queue
    /// and their timeout has not started. A worker whose slots are all taken (or that holds
    /// nothing unstarted) costs nothing here: ``WorkerRecord/started`` says so without a walk.
    private func markStarted(of worker: WorkerRecord, now: ContinuousClock.Instant) {
        guard worker.started < worker.slots, worker.started < worker.holding else { return }
        worker.dropReleasedFront()
        var looked = 0
        // Bounded: answered entries may sit between held ones until they reach the front.
        for entry in worker.sendOrder.elements {
            guard worker.started < worker.slots, looked < worker.slots * 4 + 64 else { break }
            looked += 1
            if entry.holder === worker, entry.startedAt == nil { worker.markStarted(entry, at: nowTick) }
        }
    }

    // MARK: Worker messages

    private func handle(_ message: WorkerMessage, from peer: PeerID, key: String, now: ContinuousClock.Instant) {
        guard let worker = workers[peer] else {
            switch message {
            case .ready(let service, let capabilities):
                forgetDeparture(peer)
                register(peer: peer, service: service, capabilities: capabilities ?? Capabilities(), key: key, now: now)
            case .disconnect:
                break  // Nothing to do: the peer was not registered.
            case .reply, .heartbeat, .refresh, .request:
                if departedSet.contains(peer) {
                    // A worker the broker let go of (expired, unreachable) is still talking: its items were
                    // already taken back. Not a protocol error; tell it to register again.
                    actions.append(.lateMessage(peer: peer))
                } else {
                    actions.append(.protocolError(peer: peer, code: .outOfOrder, detail: "\(message.commandName) from a worker that never sent READY"))
                }
                actions.append(.disconnect(peer: peer))
            }
            return
        }
        // Any well-formed message shows the worker is alive; a malformed REPLY does not (below).
        if case .reply = message {} else { worker.lastSeen = nowTick }
        switch message {
        case .ready:
            actions.append(.protocolError(peer: peer, code: .outOfOrder, detail: "READY from a worker that is already registered"))
            removeWorker(peer, reason: .protocolError, detail: "sent a second READY", now: now, countAttempt: true)
            actions.append(.disconnect(peer: peer))
        case .heartbeat:
            break
        case .refresh(let fresh):
            let wasYielding = worker.isYielding
            // Facts about the node, whichever of its DEALERs carried them; only the dynamic ones.
            for name in fresh.values.keys where Fingerprint.isDynamicCapability(name) {
                for other in nodes[worker.node] ?? [] { workers[other]?.capabilities[name] = fresh[name] }
            }
            for other in nodes[worker.node] ?? [] {
                guard let record = workers[other] else { continue }
                record.effectiveSpeed = EffectiveSpeed(record.capabilities)
                // `yielding` describes the machine: every worker of the node starts or stops taking items.
                updateStanding(record)
            }
            ownerPolicyChanged(worker, wasYielding: wasYielding)
            refreshCredit(of: worker, from: fresh, now: now)
        case .disconnect:
            // A worker that says goodbye did not fail its items: they go back without using an attempt.
            removeWorker(peer, reason: .disconnect, detail: "the worker said goodbye", now: now, countAttempt: false)
        case .request:
            actions.append(.protocolError(peer: peer, code: .outOfOrder, detail: "REQUEST sent by a worker"))
        case .reply(let client, let body):
            do {
                let reply = try WorkerReply(client: client, body: body, batched: worker.speaksLANCompute)
                worker.lastSeen = nowTick
                switch reply {
                case .batch(let reply):
                    // Handed-back items each go to the front of their queue: the last first, so they keep their order.
                    let handedBack = reply.outcomes.filter { $0.status == .returned }
                    for outcome in reply.outcomes where outcome.status != .returned { complete(outcome, from: worker, now: now) }
                    for outcome in handedBack.reversed() { complete(outcome, from: worker, now: now) }
                case .single(let token, let outputs):
                    complete(ItemOutcome(id: token.id, epoch: token.epoch, attempt: token.attempt, status: .completed(outputs: outputs)),
                             from: worker, now: now)
                }
            } catch {
                actions.append(.protocolError(peer: peer, code: .malformedMessage, detail: "bad REPLY: \(error)"))
            }
            markStarted(of: worker, now: now)
        }
        // Credit given back or changed, a breaker moved, a second READY removed it: the open set follows.
        updateStanding(worker)
    }

    private func register(peer: PeerID, service: String, capabilities: Capabilities, key: String, now: ContinuousClock.Instant) {
        guard !service.hasPrefix("mmi.") else {
            actions.append(.protocolError(peer: peer, code: .outOfOrder, detail: "READY for reserved service \(service)"))
            actions.append(.disconnect(peer: peer))
            return
        }
        guard let stage = stageIndex[service] else {
            actions.append(.protocolError(peer: peer, code: .unknownStage, detail: "READY for unknown stage \"\(service)\""))
            actions.append(.disconnect(peer: peer))
            return
        }
        if let head = stages[stage].chainHead {
            let chain = ChainPlan.describe(stages[head].chain.map { stages[$0].spec.name })
            actions.append(.protocolError(peer: peer, code: .unknownStage,
                                          detail: "stage \(service) runs inside chain \(chain), whose workers register \(stages[head].spec.name); or set chain: false on \(service)"))
            actions.append(.disconnect(peer: peer))
            return
        }
        if !stages[stage].chain.isEmpty {
            // Only a worker that runs the whole chain may serve its head: an older or a plain MDP worker
            // would run the head alone and its outputs would skip the other members.
            let names = stages[stage].chain.map { stages[$0].spec.name }
            guard capabilities["chain"] == names.joined(separator: ",") else {
                actions.append(.protocolError(peer: peer, code: .unknownStage,
                                              detail: "stage \(service) heads chain \(ChainPlan.describe(names)) and this worker does not run it (it announced chain=\(capabilities["chain"] ?? "nothing")); upgrade the worker, or set chain: false on \(names[1])"))
                actions.append(.disconnect(peer: peer))
                return
            }
        }
        let spec = stages[stage].spec
        if let unmet = spec.requires.unmetReason(capabilities) {
            actions.append(.protocolError(peer: peer, code: .unknownStage, detail: "worker cannot serve stage \(service): \(unmet)"))
            actions.append(.disconnect(peer: peer))
            return
        }
        let creditLimit = min(limits.maxCredit, spec.credit ?? Int.max)
        var breaker: CircuitBreaker?
        if spec.breaker.enabled {
            let breakerKey = BreakerKey(node: capabilities["node"] ?? "mdp-\(hex(peer))", stage: stage)
            breaker = breakers[breakerKey] ?? CircuitBreaker(policy: spec.breaker, now: now)
            breakers[breakerKey] = breaker
        }
        let worker = WorkerRecord(peer: peer, stage: stage, sequence: registrations, capabilities: capabilities, creditLimit: creditLimit,
                                  preference: spec.prefers.score(capabilities), key: key, breaker: breaker, now: nowTick)
        registrations += 1
        workers[peer] = worker
        stages[stage].workers.append(peer)
        updateStanding(worker)
        if nodes[worker.node, default: []].isEmpty {
            actions.append(.nodeJoined(node: worker.node, host: worker.host, capabilities: capabilities))
        }
        nodes[worker.node, default: []].insert(peer)
        actions.append(.workerJoined(JoinedWorker(peer: peer, stageName: service, node: worker.node, host: worker.host,
                                                  credit: worker.credit, capabilities: capabilities)))
        // Said now, not at the next tick: a short run can end before that tick, and the stage
        // reported unserved would never be reported served.
        if !worker.isQuarantined { markServed(stage: stage) }
        repin(stage: stage)
    }

    /// A refresh's session properties, which concern this connection alone: a probe is echoed at once
    /// (the worker times the round trip with it), and a new credit replaces the old one within the
    /// broker's bound. Items already in flight stay where they are whatever the new credit: a
    /// lowered credit only holds back further items until the worker holds fewer than it.
    private func refreshCredit(of worker: WorkerRecord, from fresh: Capabilities, now: ContinuousClock.Instant) {
        if let probe = fresh.probe {
            actions.append(.probeEcho(peer: worker.peer, probe: probe))
            worker.lastSent = nowTick
        }
        guard let asked = fresh.refreshedCredit else { return }
        worker.roundTrip = fresh.roundTrip ?? worker.roundTrip
        let credit = min(asked, worker.creditLimit)
        guard credit != worker.credit else { return }
        let before = worker.credit
        worker.credit = credit
        // What `mmi.nodes` shows among the capabilities is then what the worker holds now, not its READY.
        worker.capabilities[Capabilities.creditName] = String(credit)
        actions.append(.workerCreditChanged(peer: worker.peer, stageName: stages[worker.stage].spec.name, from: before, to: credit,
                                            roundTrip: worker.roundTrip))
    }

    private func removeWorker(_ peer: PeerID, reason: WorkerLeaveReason, detail: String, now: ContinuousClock.Instant, countAttempt: Bool) {
        guard let worker = workers.removeValue(forKey: peer) else { return }
        stages[worker.stage].workers.removeAll { $0 == peer }
        updateStanding(worker)
        if reason != .disconnect { rememberDeparture(peer) }
        var requeued = 0
        // Highest id first: each goes back to the front, so they end up in their original order.
        for entry in worker.releaseAll().sorted(by: { $0.item.id > $1.item.id }) {
            // Outputs the aggregator is writing already: the item only waits for its ack.
            if entry.admitted { continue }
            inFlight[entry.item.id] = nil
            requeued += 1
            // Only the items the worker had started may have killed it: they pay an attempt and are
            // suspects from now on; those still waiting inside it go back as they were.
            if countAttempt && entry.startedAt != nil {
                entry.item.suspect = true
                fail(entry.item, retryReason: .workerLost,
                     message: "worker \(hex(peer)) on \(worker.host) was lost (\(reason.rawValue): \(detail)) while processing the item",
                     stderr: "", now: now, on: worker.node)
            } else {
                entry.item.attempts -= 1
                actions.append(.itemRetried(stage: entry.item.stage, id: entry.item.id, attempt: entry.item.attempts,
                                            reason: countAttempt ? .workerLost : .workerLeft))
                place(entry.item, atFront: true)
            }
        }
        // Final-stage items whose outputs may not have left the dead worker: send them again.
        let unconfirmed = inFlight.entries.filter { $0.value.peer == peer && $0.value.replied && !$0.value.admitted }
        for (id, entry) in unconfirmed.sorted(by: { $0.id < $1.id }) {
            inFlight[id] = nil
            requeued += 1
            retry(entry.item, reason: .workerLost)
        }
        let unpinned = worker.pinned.drain()
        stages[worker.stage].pinnedCount -= unpinned.count
        for item in unpinned { place(item) }
        repin(stage: worker.stage)
        actions.append(.workerLeft(peer: peer, stageName: stages[worker.stage].spec.name, reason: reason, detail: detail, requeued: requeued))
        nodes[worker.node]?.remove(peer)
        if nodes[worker.node]?.isEmpty == true {
            nodes[worker.node] = nil
            actions.append(.nodeLeft(node: worker.node, reason: reason, detail: detail))
        }
    }

    private func rememberDeparture(_ peer: PeerID) {
        guard departedSet.insert(peer).inserted else { return }
        departed.append(peer)
        while departed.count > 4096, let oldest = departed.popFirst() { departedSet.remove(oldest) }
    }

    private func forgetDeparture(_ peer: PeerID) {
        if departedSet.remove(peer) != nil { _ = departed.removeAll { $0 == peer } }
    }

    // MARK: Outcomes

    private func complete(_ outcome: ItemOutcome, from worker: WorkerRecord, now: ContinuousClock.Instant) {
        guard outcome.epoch == epoch else {
            // Held by the worker from a run before a restart: its id may name another item in this run.
            actions.append(.foreignOutcome(peer: worker.peer, id: outcome.id, epoch: outcome.epoch))
            return
        }
        // A late reply for an item taken back, or for another attempt than the one in flight: ignore it,
        // and keep the item (and the worker's credit for it) until the attempt in flight is answered.
        // The entry says which worker holds it.
        guard let entry = inFlight[outcome.id] else { return }
        guard entry.holder === worker, entry.item.attempts == Int(outcome.attempt) else { return }
        worker.release(entry)
        worker.lastProgress = nowTick
        let stage = entry.item.stage
        // A final stage's item waits for the aggregator's ack; every other outcome is done with the entry.
        switch outcome.status {
        case .completed where entry.item.client == nil && stages[stage].isFinal, .deliveredToAggregator:
            break
        default:
            inFlight.removeValue(forKey: outcome.id)
        }
        switch outcome.status {
        case .failed(let message, let stderr):
            actions.append(.attemptFailed(stage: stage))
            // The breaker first, so a retry already avoids a worker it just quarantined.
            recordOutcome(of: worker, failed: true, now: now)
            fail(entry.item, retryReason: .failed, message: message, stderr: stderr, now: now, on: worker.node)
        case .failedAt(let member, let message, let stderr):
            // A chain failed at one of its members: the item starts the chain again from its head,
            // and that member's max-attempts and name go with the failure. A name that is not a
            // member of this chain counts as the head's failure.
            let failing = stageIndex[member].flatMap { stages[stage].chain.contains($0) ? $0 : nil } ?? stage
            actions.append(.attemptFailed(stage: failing))
            recordOutcome(of: worker, failed: true, now: now)
            fail(entry.item, retryReason: .failed, message: message, stderr: stderr, now: now, at: failing, on: worker.node)
        case .completed(let outputs):
            worker.completed += 1
            recordOutcome(of: worker, failed: false, now: now)
            attemptCompleted(entry.item, now: now)
            if let client = entry.item.client {
                actions.append(.clientReply(peer: client.peer, service: client.service, body: outputs.isEmpty ? [[]] : outputs))
                finish(entry.item, settled: nil)
            } else if stages[stage].isFinal {
                // Forward to the aggregator and wait for its ack before the item counts as done.
                entry.repliedAt = nowTick
                entry.admitted = true
                settled(entry.item.id, root: entry.item.root, as: .admitted)
                actions.append(.forwardToAggregator([ItemOutcome(id: outcome.id, epoch: epoch, attempt: outcome.attempt, status: .completed(outputs: outputs))]))
            } else {
                forward(entry.item, outputs: outputs, now: now)
            }
        case .deliveredToAggregator:
            worker.completed += 1
            recordOutcome(of: worker, failed: false, now: now)
            attemptCompleted(entry.item, now: now)
            entry.repliedAt = nowTick
        case .returned:
            handedBack(entry, now: now)
        }
    }

    // MARK: Owner policy

    /// A refresh changed whether the worker's node yields to its owner: one event for the node.
    private func ownerPolicyChanged(_ worker: WorkerRecord, wasYielding: Bool) {
        guard worker.isYielding != wasYielding else { return }
        let load = worker.capabilities["owner.load"].flatMap(Double.init)
        actions.append(.nodeYielding(node: worker.node, host: worker.host, yielding: worker.isYielding, otherLoad: load))
    }

    /// A worker handed an item back unstarted (it yields to its machine's owner): it goes back to the
    /// front of its queue as it was, without using an attempt.
    private func handedBack(_ entry: InFlight, now: ContinuousClock.Instant) {
        entry.item.attempts -= 1
        actions.append(.itemRetried(stage: entry.item.stage, id: entry.item.id, attempt: entry.item.attempts, reason: .handedBack))
        place(entry.item, atFront: true)
    }

    /// An attempt succeeded. For a chain, each member after the head counts the item as received and
    /// completed too (the chain's latency), so per-stage counts show the items that went through it.
    private func attemptCompleted(_ item: BrokerItem, now: ContinuousClock.Instant) {
        let latency = nowTick.microseconds(since: item.enqueuedAt)
        countCompleted(stage: item.stage, latency: latency)
        for member in stages[item.stage].chain.dropFirst() {
            countReceived(stage: member)
            countCompleted(stage: member, latency: latency)
        }
    }

    /// Sends each output of a completed item to every downstream stage, with derived stable ids.
    private func forward(_ item: BrokerItem, outputs: [[UInt8]], now: ContinuousClock.Instant) {
        let children = stages[item.stage].downstream.count * outputs.count
        if item.client == nil, children > 0 {
            // Counted before the first is queued (one may settle at once, skipped on resume). An item that
            // is its own root was counted nowhere: it is entered now, with its children, and ``finish``
            // below takes its own count off again.
            unsettled[item.root, default: 0] += Int32(children) + (item.id == item.root ? 1 : 0)
        }
        for downstream in stages[item.stage].downstream {
            for (index, output) in outputs.enumerated() {
                let child = BrokerItem(id: ItemID.derived(parent: item.id, stageIndex: downstream, outputIndex: index),
                                       stage: downstream, payload: output, enqueuedAt: nowTick, bornAt: item.bornAt, root: item.root)
                child.priority = max(item.priority, Int16(clamping: stages[item.stage].chainPriority))
                pending += 1
                enqueue(child, now: now)
            }
        }
        finish(item, settled: nil)
    }

    /// Decides which offered outputs the aggregator may write: one attempt's outputs per item still
    /// in flight in this run. Admitted items can no longer end in the dead letters, so an item is
    /// never both there and in the sink.
    private func admit(_ offers: [OfferedOutput]) {
        var admitted: [UInt64] = []
        var refused: [UInt64] = []
        for offer in offers {
            guard offer.epoch == epoch, let entry = inFlight[offer.id], !entry.admitted, entry.item.client == nil,
                  stages[entry.item.stage].isFinal else {
                refused.append(offer.id)
                continue
            }
            // Only the key the item was sent to may deliver its outputs: another authorized worker
            // (or anyone who can reach the aggregator) cannot put results into the sink for it.
            guard offer.sender == entry.key else {
                refused.append(offer.id)
                actions.append(.impostorOutcome(id: offer.id, sender: offer.sender))
                continue
            }
            // Any attempt's outputs will do (processing is at-least-once); the first offered wins.
            entry.admitted = true
            admitted.append(offer.id)
            settled(offer.id, root: entry.item.root, as: .admitted)
        }
        actions.append(.admission(admitted: admitted, refused: refused))
    }

    private func acknowledge(_ ids: [UInt64], now: ContinuousClock.Instant) {
        for id in ids {
            // One hash lookup: the removal returns the entry.
            guard let entry = inFlight.removeValue(forKey: id) else { continue }  // a duplicate, already done
            inSinkNow.append(nowTick.microseconds(since: entry.item.bornAt))
            // The ack overtook the worker's REPLY: the item is done; free the credit now. (Once the worker
            // was let go its entries have no holder; one registered since under the same routing id counts it.)
            if !entry.replied, let worker = entry.holder ?? workers[entry.peer] {
                if entry.holder === worker { worker.release(entry) }
                worker.completed += 1
                updateStanding(worker)
                attemptCompleted(entry.item, now: now)
            }
            finish(entry.item, settled: .inSink)
        }
    }

    /// `at`: the chain member that failed, whose max-attempts applies and whom a dead letter names.
    /// `node`: the worker process the attempt failed on, which its retry avoids when another can take it.
    private func fail(_ item: BrokerItem, retryReason: RetryReason, message: String, stderr: String, now: ContinuousClock.Instant,
                      at member: Int? = nil, on node: String? = nil) {
        if let node, !item.failedOn.contains(node) { item.failedOn.append(node) }
        item.lastError = message
        item.lastStderr = stderr
        let maxAttempts = max(1, stages[member ?? item.stage].spec.maxAttempts)
        if item.attempts >= maxAttempts {
            deadLetter(item, reason: .attemptsExhausted, detail: "failed \(item.attempts) of \(maxAttempts) attempts; last error: \(message)", at: member)
        } else {
            retry(item, reason: retryReason)
        }
    }

    private func retry(_ item: BrokerItem, reason: RetryReason) {
        actions.append(.itemRetried(stage: item.stage, id: item.id, attempt: item.attempts, reason: reason))
        place(item, atFront: true)
    }

    private func deadLetter(_ item: BrokerItem, reason: DeadLetterReason, detail: String, abandoned: Bool = false, at member: Int? = nil) {
        let stage = member ?? item.stage
        actions.append(.deadLettered(DeadLetter(
            id: item.id, stage: stage, stageName: stages[stage].spec.name, payload: item.payload, attempts: item.attempts,
            reason: reason, detail: detail, lastError: item.lastError, lastStderr: item.lastStderr)))
        if let client = item.client {
            actions.append(.clientReply(peer: client.peer, service: client.service, body: [Array("error".utf8), Array(detail.utf8)]))
        }
        if abandoned {
            pending -= 1
            if let client = item.client { clientBytes -= client.bytes }
        } else {
            finish(item, settled: .deadLettered)
        }
    }

    /// An item is done with: settled (`settled`), handed on downstream, or answered to its client
    /// (nil). When it was its source item's last unsettled descendant, the source item is finished.
    private func finish(_ item: BrokerItem, settled: Settlement?) {
        pending -= 1
        if let client = item.client { clientBytes -= client.bytes }
        guard item.client == nil else { return }
        if let settlement = settled { self.settled(item.id, root: item.root, as: settlement) }
        // At most one hash lookup, none while no source item has other descendants: the count is
        // changed or removed through its index.
        guard !unsettled.isEmpty, let index = unsettled.index(forKey: item.root) else {
            // A source item counted nowhere (``unsettled``) was its own last descendant.
            if item.id == item.root { finishedNow.append(item.root) }
            return
        }
        if unsettled.values[index] <= 1 {
            unsettled.remove(at: index)
            finishedNow.append(item.root)
        } else {
            unsettled.values[index] -= 1
        }
    }

    // MARK: Circuit breakers

    /// Weighs one attempt's outcome in the worker's breaker, and opens, reopens or closes it.
    private func recordOutcome(of worker: WorkerRecord, failed: Bool, now: ContinuousClock.Instant) {
        guard let breaker = worker.breaker else { return }
        switch breaker.record(failed: failed, at: now) {
        case .unchanged:
            return
        case .tripped:
            // Only while another worker of the stage shows it works: when every worker fails, the
            // stage or its items are at fault, and quarantining all of them would only stall the run.
            let othersDoBetter = stages[worker.stage].workers.contains { peer in
                guard let other = workers[peer], other.node != worker.node else { return false }
                return other.breaker?.isHealthy ?? false
            }
            guard othersDoBetter else { return }
            let failures = breaker.failuresInWindow
            let outcomes = breaker.outcomesInWindow
            let cooldown = breaker.open(at: now)
            announce(breaker, of: worker.node, stage: worker.stage, peer: worker.peer, failures: failures, outcomes: outcomes, cooldown: cooldown)
        case .reopened(let cooldown):
            announce(breaker, of: worker.node, stage: worker.stage, peer: worker.peer, failures: 1, outcomes: 1, cooldown: cooldown)
        case .closed:
            announce(breaker, of: worker.node, stage: worker.stage, peer: worker.peer, failures: 0, outcomes: 1, cooldown: nil)
        }
        updateStanding(worker)
        // Keys of a grouped stage leave a quarantined worker and come back when it probes.
        repin(stage: worker.stage)
    }

    private func announce(_ breaker: CircuitBreaker, of node: String, stage: Int, peer: PeerID?, failures: Int, outcomes: Int, cooldown: Duration?) {
        actions.append(.breakerChanged(BreakerChange(peer: peer, node: node, stage: stage, stageName: stages[stage].spec.name, state: breaker.state,
                                                     failures: failures, outcomes: outcomes, cooldown: cooldown)))
    }

    /// Open breakers whose cool-down is over start probing; those of nodes long gone are forgotten.
    private func expireBreakers(now: ContinuousClock.Instant) {
        // Every tick, so only the few breakers with something to do are sorted (for a stable order of actions).
        let due = breakers.filter { key, breaker in
            breaker.isOpen || (nodes[key.node] == nil && now - breaker.lastUsed > breaker.policy.maxCooldown * 2)
        }
        for key in due.keys.sorted() {
            guard let breaker = breakers[key] else { continue }
            let worker = nodes[key.node]?.compactMap { workers[$0] }.first { $0.stage == key.stage }
            if worker == nil, now - breaker.lastUsed > breaker.policy.maxCooldown * 2 {
                breakers[key] = nil
                continue
            }
            guard breaker.expire(at: now) else { continue }
            if let worker { updateStanding(worker) }
            announce(breaker, of: key.node, stage: key.stage, peer: worker?.peer, failures: breaker.failuresInWindow,
                     outcomes: breaker.outcomesInWindow, cooldown: nil)
            repin(stage: key.stage)
        }
    }

    /// Each worker's breaker at its stage, for `lancompute nodes`.
    private func breakerSummary(of worker: WorkerRecord, now: ContinuousClock.Instant) -> BreakerSummary? {
        guard let breaker = worker.breaker else { return nil }
        var probeIn: Duration?
        if case .open(let until) = breaker.state { probeIn = max(.zero, until - now) }
        return BreakerSummary(stage: stages[worker.stage].spec.name, state: breaker.state, probeIn: probeIn,
                              failures: breaker.failuresInWindow, outcomes: breaker.outcomesInWindow)
    }

    // MARK: Time

    /// Heartbeats, expiry of silent workers, attempt timeouts and ack timeouts.
    private func tick(now: ContinuousClock.Instant) {
        let expiry = heartbeatInterval * liveness
        // Once a tick: only the workers with something due are sorted (for a stable order of actions).
        let due = workers.values.filter { worker in
            nowTick - worker.lastSeen >= expiry || nowTick - worker.lastSent >= heartbeatInterval
                || (limits.stallTimeout.map { worker.holding > 0 && nowTick - worker.lastProgress >= $0 } ?? false)
        }
        for worker in due.sorted(by: { $0.peer.lexicographicallyPrecedes($1.peer) }) {
            if nowTick - worker.lastSeen >= expiry {
                removeWorker(worker.peer, reason: .expired,
                             detail: "silent for more than \(seconds(expiry)) on stage \(stages[worker.stage].spec.name)",
                             now: now, countAttempt: true)
            } else if let stall = limits.stallTimeout, worker.holding > 0, nowTick - worker.lastProgress >= stall {
                removeWorker(worker.peer, reason: .expired,
                             detail: "held \(worker.holding) items for \(seconds(stall)) without finishing one on stage \(stages[worker.stage].spec.name)",
                             now: now, countAttempt: true)
                // It may well be alive (it still heartbeats): tell it so, and it registers afresh.
                actions.append(.disconnect(peer: worker.peer))
            } else if nowTick - worker.lastSent >= heartbeatInterval {
                worker.lastSent = nowTick
                actions.append(.heartbeat(peer: worker.peer))
            }
        }
        var expired: [(UInt64, InFlight, RetryReason)] = []
        for (id, entry) in inFlight.entries where !entry.admitted {
            if let repliedAt = entry.repliedAt {
                if nowTick - repliedAt > ackTimeout { expired.append((id, entry, .ackTimeout)) }
            } else if let timeout = attemptTimeout(stage: entry.item.stage), let startedAt = entry.startedAt, nowTick - startedAt > timeout {
                expired.append((id, entry, .timeout))
            }
        }
        for (id, entry, reason) in expired.sorted(by: { $0.0 < $1.0 }) {
            inFlight[id] = nil
            let worker = workers[entry.peer]
            entry.holder?.release(entry)
            if let worker { updateStanding(worker) }
            let stage = entry.item.stage
            actions.append(.attemptFailed(stage: stage))
            // A timeout, or outputs the aggregator never got, count against the worker's breaker like a failure.
            if let worker { recordOutcome(of: worker, failed: true, now: now) }
            if reason == .ackTimeout {
                // Counted as a failed attempt: a worker that cannot reach the aggregator would
                // otherwise get the same item back forever.
                fail(entry.item, retryReason: .ackTimeout,
                     message: "the aggregator never confirmed the outputs within \(seconds(ackTimeout)) of worker \(hex(entry.peer))'s reply; can that worker reach the aggregator endpoint?",
                     stderr: "", now: now, on: worker?.node)
            } else {
                fail(entry.item, retryReason: .timeout, message: "timed out after \(seconds(attemptTimeout(stage: stage)!))", stderr: "", now: now,
                     on: worker?.node)
            }
        }
        for worker in workers.values where worker.holding > 0 { markStarted(of: worker, now: now) }
        expireBreakers(now: now)
        // Queued items past their deadline go now, not only when a worker would have taken them.
        for stage in stages.indices where stages[stage].spec.deadline != nil {
            // Items with a deadline are objects in the queue: compact ones carry none.
            let late = stages[stage].queue.removeObjects { item in item.deadline.map { now >= $0 } ?? false }
            for item in late { _ = admit(item, now: now) }
        }
        checkUnserved(now: now)
    }

    /// Dead-letters every item not yet finished — queued, pinned or in flight — with `reason`.
    private func abandonAll(reason: DeadLetterReason) {
        var items: [BrokerItem] = []
        // Not counted among their source items' descendants: that table is emptied below.
        for stage in stages.indices {
            items += stages[stage].queue.drain().map(\.item)
            stages[stage].pinnedCount = 0
        }
        for worker in workers.values.sorted(by: { $0.peer.lexicographicallyPrecedes($1.peer) }) {
            items += worker.pinned.drain()
            _ = worker.releaseAll()
            updateStanding(worker)
        }
        items += inFlight.allValues.map(\.item).sorted { $0.id < $1.id }
        inFlight.removeAll()
        let detail = reason == .runStopped ? "the run was stopped before the item was finished" : "the run ended before the item was finished"
        for item in items {
            item.lastError = detail
            deadLetter(item, reason: reason, detail: detail, abandoned: true)
        }
        unsettled.removeAll()
    }
}

/// One node as metrics show it.
struct NodeSummary {
    var node: String
    var host: String
    var workers: Int
    var inFlight: Int
    var completed: Int
    var heartbeatAge: Duration
    var capabilities: Capabilities
    /// The stages the node's workers serve.
    var stages: [String] = []
    /// Each registered stage's credit now (a chain under its head's name).
    var credits: [String: Int] = [:]
    /// The smallest round trip its workers reported with a credit refresh; nil: none did.
    var roundTrip: Duration?
    /// Its workers' breakers, by stage; none for stages with `breaker: false`.
    var breakers: [BreakerSummary] = []
}

/// A duration as people read it in a log line: `1.5s`, `500ms`.
func seconds(_ duration: Duration) -> String {
    let (whole, atto) = duration.components
    let milliseconds = whole * 1000 + atto / 1_000_000_000_000_000
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
    if milliseconds < 1000 { return "\(milliseconds)ms" }
    return "\(Double(milliseconds) / 1000)s"
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
