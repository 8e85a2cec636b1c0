// The broker core without sockets or clock: inputs in, asserted actions out (credit, lifecycle, redelivery, placement).

import Testing
@testable import LANCompute

/// A core driven by hand: a manual clock, and every action it returned kept for assertions.
final class CoreDriver {
    let core: BrokerCore
    var now = ContinuousClock.now
    var actions: [BrokerAction] = []

    init(_ stages: [StageSpec], heartbeat: Duration = .milliseconds(500), liveness: Int = 3, ackTimeout: Duration = .seconds(30),
         limits: WorkerLimits = WorkerLimits(), compactQueuesAfter: Int = StageQueue.defaultCompactAfter) {
        var topology = Topology(name: "t", source: SourceSpec(kind: .stdin), stages: stages, sink: SinkSpec(kind: .stdout))
        topology.broker.heartbeatInterval = heartbeat
        topology.broker.heartbeatLiveness = liveness
        core = BrokerCore(topology: topology, ackTimeout: ackTimeout, limits: limits, compactQueuesAfter: compactQueuesAfter)
    }

    /// Feeds one input and returns (and keeps) what the core did.
    @discardableResult
    func feed(_ input: BrokerInput) -> [BrokerAction] {
        let returned = core.handle(input, at: now)
        actions += returned
        return returned
    }

    func advance(_ duration: Duration) { now += duration }

    func ready(_ peer: PeerID, _ stage: String, _ capabilities: Capabilities?) {
        feed(.worker(peer: peer, message: .ready(service: stage, capabilities: capabilities)))
    }

    func reply(_ peer: PeerID, _ outcomes: [ItemOutcome]) {
        feed(.worker(peer: peer, message: .reply(client: [], body: ReplyBatch(outcomes: outcomes).frames)))
    }

    func completed(_ peer: PeerID, _ id: UInt64, attempt: UInt16 = 1, outputs: [[UInt8]] = [[1]]) {
        reply(peer, [ItemOutcome(id: id, epoch: core.epoch, attempt: attempt, status: .completed(outputs: outputs))])
    }

    func delivered(_ peer: PeerID, _ id: UInt64, attempt: UInt16 = 1) {
        reply(peer, [ItemOutcome(id: id, epoch: core.epoch, attempt: attempt, status: .deliveredToAggregator(count: 1))])
    }

    func failed(_ peer: PeerID, _ id: UInt64, attempt: UInt16 = 1, message: String = "boom") {
        reply(peer, [ItemOutcome(id: id, epoch: core.epoch, attempt: attempt, status: .failed(message: message, stderr: ""))])
    }

    /// Drops the actions seen so far.
    func clear() { actions.removeAll() }

    /// Every REQUEST sent to `peer`, as (form, headers) in order.
    func requests(to peer: PeerID) -> [(form: RequestForm, items: [DispatchedItem])] {
        actions.compactMap { if case .request(peer, let form, let items) = $0 { (form, items) } else { nil } }
    }

    func sentIDs(to peer: PeerID) -> [UInt64] { requests(to: peer).flatMap { $0.items.map(\.header.id) } }

    var deadLetters: [DeadLetter] { actions.compactMap { if case .deadLettered(let letter) = $0 { letter } else { nil } } }
    var inSink: [UInt64] {
        actions.flatMap { action -> [UInt64] in if case .itemsSettled(.inSink, let entries) = action { entries.map(\.id) } else { [] } }
    }
    var retries: [(id: UInt64, reason: RetryReason)] {
        actions.compactMap { if case .itemRetried(_, let id, _, let reason) = $0 { (id, reason) } else { nil } }
    }
    var protocolErrors: [ProtocolErrorCode] { actions.compactMap { if case .protocolError(_, let code, _) = $0 { code } else { nil } } }
    func disconnects(_ peer: PeerID) -> Int { actions.filter { if case .disconnect(peer) = $0 { true } else { false } }.count }
    var forwarded: [ItemOutcome] { actions.flatMap { action -> [ItemOutcome] in if case .forwardToAggregator(let outcomes) = action { outcomes } else { [] } } }
}

func lanCompute(credit: Int, batch: Int = 1, slots: Int? = nil, node: String = "n1", labels: [String: String] = [:]) -> Capabilities {
    var capabilities = Capabilities(["protocol": MDP.lanComputeProtocol, "credit": String(credit), "batch": String(batch), "node": node, "host": "h"])
    if let slots { capabilities["slots"] = String(slots) }
    for (key, value) in labels { capabilities["label.\(key)"] = value }
    return capabilities
}

@Suite struct BrokerCoreTests {
    @Test func dispatchNeverExceedsCredit() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 3, batch: 2))
        for id in 0..<10 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        #expect(driver.requests(to: [1]).map(\.items.count) == [1, 1, 1])
        driver.clear()
        // Credit comes back with each answer, and never more than the batch size at once.
        driver.reply([1], (0..<3).map { ItemOutcome(id: UInt64($0), epoch: driver.core.epoch, attempt: 1, status: .deliveredToAggregator(count: 1)) })
        #expect(driver.requests(to: [1]).map(\.items.count) == [2, 1])
    }

    @Test func completedItemsFlowDownstreamWithDerivedIDsAndFinishOnAck() {
        let driver = CoreDriver([
            StageSpec(name: "split", handler: .external),
            StageSpec(name: "count", handler: .external, from: ["split"]),
        ])
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.ready([2], "count", lanCompute(credit: 10))
        driver.feed(.accepted(id: 7, payload: Array("a b".utf8)))
        #expect(driver.sentIDs(to: [1]) == [7])
        driver.completed([1], 7, outputs: [[97], [98]])
        let children = driver.sentIDs(to: [2])
        #expect(children == [ItemID.derived(parent: 7, stageIndex: 1, outputIndex: 0), ItemID.derived(parent: 7, stageIndex: 1, outputIndex: 1)])
        for child in children { driver.delivered([2], child) }
        #expect(driver.inSink.isEmpty, "a final item is done only when the aggregator confirms it")
        driver.feed(.aggregatorAcknowledged(ids: children))
        driver.feed(.aggregatorAcknowledged(ids: children))
        #expect(driver.inSink == children, "a duplicate ack changes nothing")
        driver.feed(.shutDown(reason: .runEnded))
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func finalOutputsReturnedInTheReplyAreForwardedToTheAggregator() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 3, payload: [3]))
        driver.completed([1], 3, outputs: [[9]])
        #expect(driver.forwarded == [ItemOutcome(id: 3, epoch: driver.core.epoch, attempt: 1, status: .completed(outputs: [[9]]))])
    }

    @Test func anExpiredWorkersItemsAreRedeliveredToTheSurvivorAndCountAnAttempt() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 3)], heartbeat: .milliseconds(100))
        driver.ready([1], "a", lanCompute(credit: 2, node: "n1"))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.feed(.accepted(id: 2, payload: [2]))
        #expect(driver.sentIDs(to: [1]) == [1, 2])
        driver.ready([2], "a", lanCompute(credit: 2, node: "n2"))
        for _ in 0..<4 {
            driver.advance(.milliseconds(100))
            driver.feed(.worker(peer: [2], message: .heartbeat))
            driver.feed(.tick)
        }
        // Both were running on the dead worker: both are suspects, so the survivor gets them one at a time.
        #expect(driver.sentIDs(to: [2]) == [1])
        driver.delivered([2], 1, attempt: 2)
        #expect(driver.sentIDs(to: [2]) == [1, 2])
        #expect(driver.requests(to: [2]).flatMap(\.items).allSatisfy { $0.header.attempt == 2 })
        #expect(driver.retries.map(\.reason) == [.workerLost, .workerLost])
        #expect(driver.actions.contains { if case .workerLeft([1], _, .expired, _, 2) = $0 { true } else { false } })
        #expect(driver.actions.contains { if case .nodeLeft("n1", .expired, _) = $0 { true } else { false } })
    }

    @Test func aGoodbyeHandsItemsBackWithoutUsingAnAttemptButCountsTheRetry() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 5, payload: [5]))
        driver.feed(.worker(peer: [1], message: .disconnect))
        #expect(driver.retries.map(\.reason) == [.workerLeft])
        driver.ready([2], "a", lanCompute(credit: 1))
        #expect(driver.requests(to: [2]).flatMap(\.items).map(\.header.attempt) == [1])
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func anItemThatKillsEveryWorkerIsDeadLetteredAfterMaxAttempts() {
        // Each worker dies with the item: the broker learns it when a send to the worker fails.
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 3)])
        for peer in UInt8(1)...UInt8(5) {
            driver.ready([peer], "a", lanCompute(credit: 1, node: "n\(peer)"))
            if peer == 1 { driver.feed(.accepted(id: 9, payload: [9])) }
            if driver.deadLetters.isEmpty { driver.feed(.sendFailed(peer: [peer], unsent: [])) }
        }
        #expect(driver.deadLetters.map(\.id) == [9])
        #expect(driver.deadLetters.first?.reason == .attemptsExhausted)
        #expect(driver.deadLetters.first?.attempts == 3)
    }

    @Test func onlyTheItemsAWorkerHadStartedPayForItsDeath() {
        // One slot, credit 3: item 1 runs, items 2 and 3 wait inside the worker when it dies.
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 3, batch: 3, slots: 1))
        for id in 1...3 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        driver.feed(.sendFailed(peer: [1], unsent: []))
        #expect(driver.deadLetters.map(\.id) == [1], "only the running item is charged (max-attempts 1)")
        driver.ready([2], "a", lanCompute(credit: 3, batch: 3, slots: 1))
        #expect(driver.requests(to: [2]).flatMap(\.items).map(\.header.attempt) == [1, 1])
    }

    @Test func anItemThatKillsWorkersTakesInnocentItemsDownAtMostOnce() {
        // Two slots: the killer (9) and an innocent item (5) run side by side and the worker dies.
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 2)])
        driver.ready([1], "a", lanCompute(credit: 2, batch: 2, slots: 2, node: "n1"))
        driver.feed(.accepted(id: 9, payload: [9]))
        driver.feed(.accepted(id: 5, payload: [5]))
        driver.feed(.sendFailed(peer: [1], unsent: []))
        // Both are suspects now: a new worker gets one of them alone, never both together.
        driver.ready([2], "a", lanCompute(credit: 2, batch: 2, slots: 2, node: "n2"))
        #expect(driver.requests(to: [2]).map(\.items.count) == [1])
        let first = driver.sentIDs(to: [2])[0]
        if first == 9 {
            driver.feed(.sendFailed(peer: [2], unsent: []))
        } else {
            driver.delivered([2], first, attempt: 2)
        }
        driver.ready([3], "a", lanCompute(credit: 2, batch: 2, slots: 2, node: "n3"))
        if first == 5 {
            #expect(driver.sentIDs(to: [2]) == [5, 9])
            driver.feed(.sendFailed(peer: [2], unsent: []))
        } else {
            #expect(driver.sentIDs(to: [3]) == [5])
            driver.delivered([3], 5, attempt: 2)
        }
        #expect(driver.deadLetters.map(\.id) == [9], "only the killer is dead-lettered")
    }

    @Test func aRequestThatCouldNotBeSentDoesNotCostAnAttempt() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 4, payload: [4]))
        driver.feed(.sendFailed(peer: [1], unsent: [4]))
        driver.ready([2], "a", lanCompute(credit: 1))
        #expect(driver.requests(to: [2]).flatMap(\.items).map(\.header.attempt) == [1])
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func failuresRetryThenDeadLetterWithTheLastError() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 2)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.failed([1], 1, attempt: 1, message: "first")
        driver.failed([1], 1, attempt: 2, message: "second")
        #expect(driver.retries.map(\.reason) == [.failed])
        #expect(driver.deadLetters.count == 1)
        #expect(driver.deadLetters.first?.lastError == "second")
        #expect(driver.deadLetters.first?.detail.contains("failed 2 of 2 attempts") == true)
    }

    @Test func aLateReplyForAnItemTakenBackIsIgnored() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, timeout: .seconds(1), maxAttempts: 3)])
        driver.ready([1], "a", lanCompute(credit: 1, node: "n1"))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.advance(.milliseconds(1100))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.retries.map(\.reason) == [.timeout])
        #expect(driver.requests(to: [1]).flatMap(\.items).map(\.header.attempt) == [1, 2])
        driver.clear()
        // The first attempt's answer arrives at last: ignored, the second attempt stays in flight.
        driver.completed([1], 1, attempt: 1)
        #expect(driver.forwarded.isEmpty)
        driver.completed([1], 1, attempt: 2)
        #expect(driver.forwarded.map(\.attempt) == [2])
    }

    @Test func theTimeoutRunsFromWhenTheWorkerStartsTheItem() {
        // One slot and credit 4: the fourth item waits behind three others inside the worker.
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, timeout: .seconds(1), maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 4, batch: 4, slots: 1))
        for id in 1...4 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        for id in 1...3 {
            driver.advance(.milliseconds(700))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
            driver.delivered([1], UInt64(id))
        }
        // Item 4 was sent 2.1 s ago but started 0 s ago: no timeout yet.
        driver.advance(.milliseconds(700))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.deadLetters.isEmpty)
        driver.advance(.milliseconds(400))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.deadLetters.map(\.id) == [4])
    }

    @Test func anAckOvertakingTheReplyCompletesTheItemAndFreesCredit() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.feed(.accepted(id: 2, payload: [2]))
        #expect(driver.sentIDs(to: [1]) == [1])
        driver.feed(.aggregatorAcknowledged(ids: [1]))
        #expect(driver.inSink == [1])
        #expect(driver.sentIDs(to: [1]) == [1, 2])
    }

    @Test func aPlainMDPWorkerGetsOneItemWithATokenAndIsNamedByItsRoutingID() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([0x0a, 0xb8], "a", nil)
        #expect(driver.actions.contains { if case .nodeJoined("mdp-0ab8", "unknown", _) = $0 { true } else { false } })
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.feed(.accepted(id: 2, payload: [2]))
        let sent = driver.requests(to: [0x0a, 0xb8])
        #expect(sent.map(\.form) == [.plain])
        let token = ItemToken(id: 1, epoch: driver.core.epoch, attempt: 1).bytes
        driver.feed(.worker(peer: [0x0a, 0xb8], message: .reply(client: token, body: [[7]])))
        #expect(driver.forwarded == [ItemOutcome(id: 1, epoch: driver.core.epoch, attempt: 1, status: .completed(outputs: [[7]]))])
        driver.feed(.shutDown(reason: .runEnded))
        #expect(driver.disconnects([0x0a, 0xb8]) == 1, "plain MDP workers are told to go at the end too")
    }

    @Test func protocolErrorsAnswerDisconnect() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.feed(.worker(peer: [9], message: .heartbeat))
        driver.ready([8], "nope", lanCompute(credit: 1))
        driver.ready([7], "mmi.x", lanCompute(credit: 1))
        driver.ready([6], "a", lanCompute(credit: 1))
        driver.ready([6], "a", lanCompute(credit: 1))
        #expect(driver.protocolErrors == [.outOfOrder, .unknownStage, .outOfOrder, .outOfOrder])
        #expect([driver.disconnects([9]), driver.disconnects([8]), driver.disconnects([7]), driver.disconnects([6])] == [1, 1, 1, 1])
        #expect(driver.actions.contains { if case .workerLeft([6], _, .protocolError, _, _) = $0 { true } else { false } })
    }

    @Test func aWorkerLetGoOfThatSpeaksLateIsNoProtocolError() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], heartbeat: .milliseconds(100))
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.advance(.seconds(1))
        driver.feed(.tick)
        driver.clear()
        driver.delivered([1], 1)
        #expect(driver.protocolErrors.isEmpty)
        #expect(driver.actions.contains { if case .lateMessage([1]) = $0 { true } else { false } })
        #expect(driver.disconnects([1]) == 1, "told to register again")
    }

    @Test func groupByPinsEachKeyToOneWorker() throws {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, groupBy: .field(0))])
        driver.ready([1], "a", lanCompute(credit: 100, batch: 100, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 100, batch: 100, node: "n2"))
        for id in 0..<40 { driver.feed(.accepted(id: UInt64(id), payload: Array("k\(id % 5) x".utf8))) }
        var keysByWorker: [PeerID: Set<[UInt8]>] = [:]
        for peer: PeerID in [[1], [2]] {
            for request in driver.requests(to: peer) { for item in request.items { keysByWorker[peer, default: []].insert(item.header.key) } }
        }
        #expect(keysByWorker[[1], default: []].isDisjoint(with: keysByWorker[[2], default: []]))
        #expect(keysByWorker.values.reduce(0) { $0 + $1.count } == 5)
    }

    @Test func preferredWorkersGetItemsFirst() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, prefers: Requirements(labels: ["gpu": "yes"]))])
        driver.ready([1], "a", lanCompute(credit: 10, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 2, node: "n2", labels: ["gpu": "yes"]))
        for id in 0..<3 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        #expect(driver.sentIDs(to: [2]) == [0, 1])
        #expect(driver.sentIDs(to: [1]) == [2])
    }

    @Test func higherPriorityItemsGoFirstWhereBranchesMeet() {
        let driver = CoreDriver([
            StageSpec(name: "bulk", handler: .external),
            StageSpec(name: "urgent", handler: .external, priority: 5),
            StageSpec(name: "merge", handler: .external, from: ["bulk", "urgent"]),
        ])
        driver.ready([1], "bulk", lanCompute(credit: 1))
        driver.ready([2], "urgent", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        let bulkID = driver.sentIDs(to: [1])[0]
        let urgentID = driver.sentIDs(to: [2])[0]
        driver.completed([1], bulkID)
        driver.completed([2], urgentID)
        driver.ready([3], "merge", lanCompute(credit: 2, batch: 2))
        let merged = driver.requests(to: [3]).flatMap(\.items)
        #expect(merged.map(\.header.priority) == [5, 0])
    }

    @Test func outputsTheAggregatorNeverConfirmsEndInADeadLetterNotALoop() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 2)], ackTimeout: .seconds(2))
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        for attempt in UInt16(1)...UInt16(2) {
            driver.delivered([1], 1, attempt: attempt)
            driver.advance(.milliseconds(2100))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(driver.retries.map(\.reason) == [.ackTimeout])
        #expect(driver.deadLetters.map(\.id) == [1])
    }

    @Test func queuedItemsPastTheirDeadlineAreDeadLettered() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, deadline: .seconds(1))])
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.advance(.seconds(2))
        driver.feed(.tick)
        #expect(driver.deadLetters.map(\.reason) == [.deadlinePassed])
    }

    @Test func aClientsRequestComesBackToTheClientNotTheSink() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 4, batch: 4))
        driver.feed(.clientRequest(stage: 0, id: 1 << 63 | 1, payload: [1], client: [42], service: "a"))
        #expect(driver.requests(to: [1]).map(\.form) == [.batch(forClients: true)])
        driver.completed([1], 1 << 63 | 1, outputs: [[2]])
        #expect(driver.actions.contains { if case .clientReply([42], "a", [[2]]) = $0 { true } else { false } })
        #expect(driver.forwarded.isEmpty)
    }

    @Test func shutDownDeadLettersEveryUnfinishedItemAndDisconnectsEveryWorker() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        for id in 1...3 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        driver.feed(.shutDown(reason: .runStopped))
        #expect(driver.deadLetters.map(\.id).sorted() == [1, 2, 3])
        #expect(driver.deadLetters.allSatisfy { $0.reason == .runStopped })
        #expect(driver.disconnects([1]) == 1)
    }

    @Test func outcomesOfAnotherRunAreRefused() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.requests(to: [1]).flatMap(\.items).map(\.header.epoch) == [driver.core.epoch])
        // The worker still holds item 1 of the run before a restart: same id, other epoch.
        driver.reply([1], [ItemOutcome(id: 1, epoch: driver.core.epoch &+ 1, attempt: 1, status: .completed(outputs: [[6]]))])
        #expect(driver.forwarded.isEmpty)
        #expect(driver.actions.contains { if case .foreignOutcome([1], 1, _) = $0 { true } else { false } })
        driver.completed([1], 1, outputs: [[7]])
        #expect(driver.forwarded.map(\.status) == [.completed(outputs: [[7]])])
    }

    @Test func theCoreAsksForItsNextTick() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], heartbeat: .milliseconds(200))
        let start = driver.now
        let actions = driver.feed(.tick)
        #expect(actions.contains { if case .scheduleTick(let at) = $0 { at == start + .milliseconds(100) } else { false } })
    }
}

@Suite struct BrokerCoreAdmissionTests {
    func offer(_ driver: CoreDriver, _ id: UInt64, attempt: UInt16 = 1, epoch: UInt32? = nil) -> (admitted: [UInt64], refused: [UInt64]) {
        let actions = driver.feed(.outputsOffered([OfferedOutput(id: id, epoch: epoch ?? driver.core.epoch, attempt: attempt)]))
        for action in actions { if case .admission(let admitted, let refused) = action { return (admitted, refused) } }
        return ([], [])
    }

    @Test func anOutputArrivingAfterItsItemWasDeadLetteredIsRefused() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, timeout: .seconds(1), maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.advance(.milliseconds(1500))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.deadLetters.map(\.id) == [1])
        // The worker finishes the item at last and PUSHes its outputs: they must not be written.
        #expect(offer(driver, 1).refused == [1])
    }

    @Test func anAdmittedItemCannotTimeOutOrBeRetriedAndFinishesOnItsAck() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, timeout: .seconds(1), maxAttempts: 1)], heartbeat: .milliseconds(500))
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(offer(driver, 1).admitted == [1])
        #expect(offer(driver, 1).refused == [1], "one attempt's outputs per item")
        // The worker dies before its REPLY, and the timeout passes: the item stays, waiting for the ack.
        driver.advance(.seconds(3))
        driver.feed(.tick)
        #expect(driver.deadLetters.isEmpty)
        #expect(driver.retries.isEmpty)
        driver.feed(.aggregatorAcknowledged(ids: [1]))
        #expect(driver.inSink == [1])
        driver.feed(.shutDown(reason: .runEnded))
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func outputsOfAnotherRunOrUnknownItemsAreRefused() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(offer(driver, 1, epoch: driver.core.epoch &+ 1).refused == [1])
        #expect(offer(driver, 99).refused == [99])
        #expect(offer(driver, 1).admitted == [1])
    }
}

@Suite struct BrokerCoreExpiryTests {
    @Test func theNextTickIsDueWhenTheNextWorkerWouldExpire() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], heartbeat: .milliseconds(500))
        let start = driver.now
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.advance(.milliseconds(1400))
        let actions = driver.feed(.tick)
        // Seen at start, liveness 3 x 500 ms: expiry at 1.5 s, sooner than the next regular tick.
        #expect(actions.contains { if case .scheduleTick(let at) = $0 { at == start + .milliseconds(1501) } else { false } })
        driver.now = start + .milliseconds(1501)
        driver.feed(.tick)
        #expect(driver.actions.contains { if case .workerLeft([1], _, .expired, _, _) = $0 { true } else { false } })
    }

    @Test func theDefaultsDeclareASilentWorkerDeadWellWithinOneAndAHalfSeconds() {
        let defaults = BrokerSettings()
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)],
                                heartbeat: defaults.heartbeatInterval, liveness: defaults.heartbeatLiveness)
        let start = driver.now
        driver.ready([1], "a", lanCompute(credit: 1))
        func expired(_ actions: [BrokerAction]) -> Bool {
            actions.contains { if case .workerLeft([1], _, .expired, _, _) = $0 { true } else { false } }
        }
        // Ticks as the shell gives them, each at the instant the previous one asked for, until the
        // expiry: every tick before it heartbeats the worker and leaves it in place.
        var tick = start
        var left: ContinuousClock.Instant?
        for _ in 0..<40 where left == nil {
            driver.now = tick
            let actions = driver.feed(.tick)
            if expired(actions) { left = tick; break }
            guard let next = actions.lazy.compactMap({ if case .scheduleTick(let at) = $0 { at } else { nil } }).first else { break }
            tick = next
        }
        let elapsed = left.map { $0 - start }
        #expect(elapsed != nil, "the silent worker never expired")
        if let elapsed {
            #expect(elapsed >= .milliseconds(900) && elapsed <= .milliseconds(1200), "expired after \(elapsed)")
        }
        #expect(driver.actions.contains { if case .heartbeat([1]) = $0 { true } else { false } })
    }
}

/// The key checks: outputs only from the key an item was sent to, and revoked keys' workers let go.
@Suite struct BrokerCoreKeyTests {
    static let keyA = String(repeating: "a", count: 40)
    static let keyB = String(repeating: "b", count: 40)

    func offer(_ driver: CoreDriver, _ id: UInt64, from sender: String) -> [BrokerAction] {
        driver.feed(.outputsOffered([OfferedOutput(id: id, epoch: driver.core.epoch, attempt: 1, sender: sender)]))
    }

    @Test func outputsAreAdmittedOnlyFromTheKeyTheItemWasSentTo() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.feed(.worker(peer: [1], message: .ready(service: "a", capabilities: lanCompute(credit: 1)), key: Self.keyA))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.sentIDs(to: [1]) == [1])
        // Another authorized key (or anyone reaching the aggregator) offers outputs for item 1: refused, and said so.
        let impostor = offer(driver, 1, from: Self.keyB)
        #expect(impostor.contains { if case .admission([], [1]) = $0 { true } else { false } })
        #expect(impostor.contains { if case .impostorOutcome(1, Self.keyB) = $0 { true } else { false } })
        let unauthenticated = offer(driver, 1, from: "")
        #expect(unauthenticated.contains { if case .impostorOutcome(1, "") = $0 { true } else { false } })
        // The worker that holds it delivers: admitted.
        let genuine = offer(driver, 1, from: Self.keyA)
        #expect(genuine.contains { if case .admission([1], []) = $0 { true } else { false } })
        #expect(!genuine.contains { if case .impostorOutcome = $0 { true } else { false } })
    }

    @Test func revokedKeysLoseTheirWorkersAndTheirItemsGoElsewhere() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.feed(.worker(peer: [1], message: .ready(service: "a", capabilities: lanCompute(credit: 1, node: "n1")), key: Self.keyA))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.feed(.worker(peer: [2], message: .ready(service: "a", capabilities: lanCompute(credit: 1, node: "n2")), key: Self.keyB))
        driver.clear()
        let actions = driver.feed(.keysRevoked([Self.keyA]))
        #expect(actions.contains { if case .workerLeft([1], "a", .revoked, _, 1) = $0 { true } else { false } })
        #expect(driver.disconnects([1]) == 1)
        #expect(driver.disconnects([2]) == 0)
        // The item it held goes to the remaining worker without using up an attempt.
        #expect(driver.requests(to: [2]).flatMap { $0.items.map(\.header.id) } == [1])
        #expect(driver.requests(to: [2]).first?.items.first?.header.attempt == 1)
        // Its outputs, were they to come late, are refused.
        #expect(offer(driver, 1, from: Self.keyA).contains { if case .impostorOutcome(1, _) = $0 { true } else { false } })
    }
}
