// The broker's state machine without sockets: credit, item lifecycle, redelivery, dead-lettering, placement.

import Testing
@testable import LANCompute

@Suite struct DispatcherTests {
    let start = ContinuousClock.now

    func topology(_ stages: [StageSpec], heartbeat: Duration = .milliseconds(500)) -> Topology {
        var topology = Topology(name: "t", source: SourceSpec(kind: .stdin), stages: stages, sink: SinkSpec(kind: .stdout))
        topology.broker.heartbeatInterval = heartbeat
        return topology
    }

    func lanCompute(credit: Int, batch: Int = 1, node: String = "n1", labels: [String: String] = [:]) -> Capabilities {
        var capabilities = Capabilities(["protocol": MDP.lanComputeProtocol, "credit": String(credit), "batch": String(batch), "node": node, "host": "h"])
        for (key, value) in labels { capabilities["label.\(key)"] = value }
        return capabilities
    }

    /// The REQUEST batches sent to `peer` since the effects were last cleared.
    func requests(to peer: PeerID, in dispatcher: Dispatcher) throws -> [RequestBatch] {
        try dispatcher.effects.compactMap { effect in
            let frames: [[UInt8]]
            switch effect {
            case .send(let target, let sent) where target == peer: frames = sent
            case .sendRouted(let target, let sent) where target == peer: frames = Array(sent.dropFirst())
            default: return nil
            }
            guard case .request(_, let body) = try WorkerMessage(frames: frames) else { return nil }
            return try RequestBatch(frames: body)
        }
    }

    func reply(_ outcomes: [ItemOutcome]) -> WorkerMessage {
        .reply(client: [], body: ReplyBatch(outcomes: outcomes).frames)
    }

    @Test func dispatchNeverExceedsCredit() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external)]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 3, batch: 2)), from: [1], now: start)
        for id in 0..<10 { dispatcher.accept(id: UInt64(id), payload: [UInt8(id)], now: start) }
        dispatcher.effects.removeAll()
        dispatcher.dispatch(now: start)
        let sent = try requests(to: [1], in: dispatcher)
        #expect(sent.map(\.items.count) == [2, 1])
        #expect(dispatcher.workers[[1]]!.inFlight.count == 3)
        #expect(dispatcher.queuedTotal == 7)
    }

    @Test func completedItemsFlowDownstreamWithDerivedIDsAndFinishOnAck() throws {
        let dispatcher = Dispatcher(topology: topology([
            StageSpec(name: "split", handler: .external),
            StageSpec(name: "count", handler: .external, from: ["split"]),
        ]))
        dispatcher.handle(.ready(service: "split", capabilities: lanCompute(credit: 10)), from: [1], now: start)
        dispatcher.handle(.ready(service: "count", capabilities: lanCompute(credit: 10)), from: [2], now: start)
        dispatcher.accept(id: 7, payload: Array("a b".utf8), now: start)
        dispatcher.dispatch(now: start)
        #expect(dispatcher.pending == 1)
        dispatcher.handle(reply([ItemOutcome(id: 7, attempt: 1, status: .completed(outputs: [[97], [98]]))]), from: [1], now: start)
        #expect(dispatcher.pending == 2)
        dispatcher.effects.removeAll()
        dispatcher.dispatch(now: start)
        let children = try requests(to: [2], in: dispatcher).flatMap(\.items)
        #expect(children.map(\.header.id) == [ItemID.derived(parent: 7, stageIndex: 1, outputIndex: 0), ItemID.derived(parent: 7, stageIndex: 1, outputIndex: 1)])
        // The final stage's outputs went to the aggregator: the items wait for its ack.
        for child in children {
            dispatcher.handle(reply([ItemOutcome(id: child.header.id, attempt: 1, status: .deliveredToAggregator(count: 1))]), from: [2], now: start)
        }
        #expect(dispatcher.pending == 2)
        dispatcher.acknowledge(children.map(\.header.id), now: start)
        #expect(dispatcher.pending == 0)
        // A duplicate ack changes nothing.
        dispatcher.acknowledge(children.map(\.header.id), now: start)
        #expect(dispatcher.pending == 0)
    }

    @Test func deadWorkersItemsAreRedeliveredToTheSurvivor() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external)], heartbeat: .milliseconds(100)))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 5, batch: 5)), from: [1], now: start)
        for id in 0..<5 { dispatcher.accept(id: UInt64(id), payload: [], now: start) }
        dispatcher.dispatch(now: start)
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 5, batch: 5, node: "n2")), from: [2], now: start)
        // Worker 2 keeps talking; worker 1 falls silent past 3 heartbeats.
        let later = start + .milliseconds(350)
        dispatcher.handle(.heartbeat, from: [2], now: later)
        dispatcher.effects.removeAll()
        dispatcher.tick(now: later)
        #expect(dispatcher.workers[[1]] == nil)
        #expect(dispatcher.effects.contains { if case .workerLeft(let peer, _, _, 5) = $0 { peer == [1] } else { false } })
        #expect(dispatcher.effects.contains { if case .nodeLeft("n1", _) = $0 { true } else { false } })
        dispatcher.dispatch(now: later)
        let redelivered = try requests(to: [2], in: dispatcher).flatMap(\.items)
        #expect(Set(redelivered.map(\.header.id)) == Set(0..<5))
        #expect(redelivered.allSatisfy { $0.header.attempt == 2 })
    }

    @Test func failuresRetryThenDeadLetterWithTheLastError() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, maxAttempts: 2)]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1)), from: [1], now: start)
        dispatcher.accept(id: 1, payload: [1], now: start)
        dispatcher.dispatch(now: start)
        dispatcher.handle(reply([ItemOutcome(id: 1, attempt: 1, status: .failed(message: "boom", stderr: "trace"))]), from: [1], now: start)
        #expect(dispatcher.stages[0].counters.retried == 1)
        dispatcher.dispatch(now: start)
        dispatcher.effects.removeAll()
        dispatcher.handle(reply([ItemOutcome(id: 1, attempt: 2, status: .failed(message: "boom again", stderr: "trace"))]), from: [1], now: start)
        let deadLetter = dispatcher.effects.compactMap { effect -> (BrokerItem, String)? in
            if case .deadLettered(let item, _, let reason) = effect { return (item, reason) } else { return nil }
        }
        #expect(deadLetter.count == 1)
        #expect(deadLetter.first?.0.attempts == 2)
        #expect(deadLetter.first?.0.lastStderr == "trace")
        #expect(deadLetter.first?.1.contains("boom again") == true)
        #expect(dispatcher.pending == 0)
        #expect(dispatcher.deadLetteredTotal == 1)
    }

    @Test func lateReplyForAnItemTakenBackIsIgnored() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, timeout: .milliseconds(50), maxAttempts: 3)]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1)), from: [1], now: start)
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1, node: "n2")), from: [2], now: start)
        dispatcher.accept(id: 1, payload: [1], now: start)
        dispatcher.dispatch(now: start)
        let first = dispatcher.inFlight[1]!.peer
        let later = start + .milliseconds(60)
        dispatcher.handle(.heartbeat, from: [1], now: later)
        dispatcher.handle(.heartbeat, from: [2], now: later)
        dispatcher.tick(now: later)
        #expect(dispatcher.inFlight[1] == nil)
        #expect(dispatcher.stages[0].counters.failed == 1)
        dispatcher.dispatch(now: later)
        let second = dispatcher.inFlight[1]!.peer
        // The first worker answers at last: too late, and for an old attempt.
        dispatcher.handle(reply([ItemOutcome(id: 1, attempt: 1, status: .completed(outputs: [[9]]))]), from: first, now: later)
        #expect(dispatcher.inFlight[1]?.peer == second)
        #expect(dispatcher.aggregatorOutbox.isEmpty)
    }

    @Test func ackOvertakingTheReplyCompletesTheItemAndFreesCredit() {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external)]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1)), from: [1], now: start)
        dispatcher.accept(id: 1, payload: [1], now: start)
        dispatcher.dispatch(now: start)
        dispatcher.acknowledge([1], now: start)
        #expect(dispatcher.pending == 0)
        #expect(dispatcher.workers[[1]]!.freeCredit == 1)
        dispatcher.handle(reply([ItemOutcome(id: 1, attempt: 1, status: .deliveredToAggregator(count: 1))]), from: [1], now: start)
        #expect(dispatcher.pending == 0)
        #expect(dispatcher.stages[0].counters.completed == 1)
    }

    @Test func plainMDPWorkerGetsOneItemWithATokenAndItsReplyIsForwarded() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "echo", handler: .external)]))
        dispatcher.handle(.ready(service: "echo", capabilities: nil), from: [5], now: start)
        dispatcher.accept(id: 42, payload: Array("hi".utf8), now: start)
        dispatcher.accept(id: 43, payload: Array("ho".utf8), now: start)
        dispatcher.effects.removeAll()
        dispatcher.dispatch(now: start)
        let sends = dispatcher.effects.compactMap { effect -> WorkerMessage? in
            switch effect {
            case .send(_, let frames): return try? WorkerMessage(frames: frames)
            case .sendRouted(_, let frames): return try? WorkerMessage(frames: Array(frames.dropFirst()))
            default: return nil
            }
        }
        #expect(sends == [.request(client: ItemToken(id: 42, attempt: 1).bytes, body: [Array("hi".utf8)])])
        dispatcher.handle(.reply(client: ItemToken(id: 42, attempt: 1).bytes, body: [Array("ih".utf8)]), from: [5], now: start)
        #expect(dispatcher.aggregatorOutbox == [ItemOutcome(id: 42, attempt: 1, status: .completed(outputs: [Array("ih".utf8)]))])
    }

    @Test func protocolErrorsAnswerDisconnect() {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, requires: Requirements(gpu: true))]))
        func disconnected(_ peer: PeerID) -> Bool {
            dispatcher.effects.contains { if case .send(peer, WorkerMessage.disconnect.frames) = $0 { true } else { false } }
        }
        dispatcher.handle(.ready(service: "nope", capabilities: nil), from: [1], now: start)
        #expect(disconnected([1]))
        dispatcher.handle(.ready(service: "mmi.service", capabilities: nil), from: [2], now: start)
        #expect(disconnected([2]))
        dispatcher.handle(.heartbeat, from: [3], now: start)
        #expect(disconnected([3]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1)), from: [4], now: start)
        #expect(disconnected([4]), "a worker without a GPU cannot serve a stage that requires one")
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1, labels: ["gpu": "metal"]).with("gpu", "true")), from: [5], now: start)
        #expect(dispatcher.workers[[5]] != nil)
        dispatcher.handle(.ready(service: "a", capabilities: nil), from: [5], now: start)
        #expect(disconnected([5]))
        #expect(dispatcher.workers[[5]] == nil)
    }

    @Test func groupByPinsEachKeyToOneWorker() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, groupBy: .field(0))]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 100, batch: 100)), from: [1], now: start)
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 100, batch: 100, node: "n2")), from: [2], now: start)
        let keys = ["red", "green", "blue", "cyan", "pink", "gold"]
        for id in 0..<60 { dispatcher.accept(id: UInt64(id), payload: Array("\(keys[id % keys.count]) \(id)".utf8), now: start) }
        dispatcher.effects.removeAll()
        dispatcher.dispatch(now: start)
        var owner: [String: PeerID] = [:]
        for peer: PeerID in [[1], [2]] {
            for item in try requests(to: peer, in: dispatcher).flatMap(\.items) {
                let key = String(decoding: item.header.key, as: UTF8.self)
                #expect(owner[key, default: peer] == peer, "key \(key) went to two workers")
                owner[key] = peer
            }
        }
        #expect(owner.count == keys.count)
    }

    @Test func preferredWorkersGetItemsFirst() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, prefers: Requirements(labels: ["fast": "yes"]))]))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 2, batch: 2)), from: [1], now: start)
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 2, batch: 2, node: "n2", labels: ["fast": "yes"])), from: [2], now: start)
        for id in 0..<3 { dispatcher.accept(id: UInt64(id), payload: [], now: start) }
        dispatcher.effects.removeAll()
        dispatcher.dispatch(now: start)
        #expect(try requests(to: [2], in: dispatcher).flatMap(\.items).count == 2)
        #expect(try requests(to: [1], in: dispatcher).flatMap(\.items).count == 1)
    }

    @Test func itemsFromAHighPriorityBranchGoFirstWhereBranchesMeet() throws {
        let dispatcher = Dispatcher(topology: topology([
            StageSpec(name: "bulk", handler: .external),
            StageSpec(name: "urgent", handler: .external, priority: 5),
            StageSpec(name: "merge", handler: .external, from: ["bulk", "urgent"]),
        ]))
        // Both entry stages read the source; their outputs meet in `merge`.
        for service in ["bulk", "urgent"] {
            dispatcher.handle(.ready(service: service, capabilities: lanCompute(credit: 10, batch: 10, node: service)), from: Array(service.utf8), now: start)
        }
        dispatcher.accept(id: 1, payload: [1], now: start)
        dispatcher.dispatch(now: start)
        let bulk = try #require(dispatcher.inFlight.values.first { $0.item.stage == 0 }?.item)
        let urgent = try #require(dispatcher.inFlight.values.first { $0.item.stage == 1 }?.item)
        #expect(bulk.priority == 0 && urgent.priority == 5)
        // The bulk branch answers first, yet the urgent branch's output is dispatched first in `merge`.
        dispatcher.handle(reply([ItemOutcome(id: bulk.id, attempt: 1, status: .completed(outputs: [Array("b".utf8)]))]), from: Array("bulk".utf8), now: start)
        dispatcher.handle(reply([ItemOutcome(id: urgent.id, attempt: 1, status: .completed(outputs: [Array("u".utf8)]))]), from: Array("urgent".utf8), now: start)
        dispatcher.handle(.ready(service: "merge", capabilities: lanCompute(credit: 10, batch: 10, node: "m")), from: [9], now: start)
        dispatcher.effects.removeAll()
        dispatcher.dispatch(now: start)
        let order = try requests(to: [9], in: dispatcher).flatMap(\.items).map(\.payload)
        #expect(order == [Array("u".utf8), Array("b".utf8)])
    }

    @Test func outputsTheAggregatorNeverConfirmsEndInADeadLetterNotALoop() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, maxAttempts: 2)]), ackTimeout: .seconds(1))
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1)), from: [1], now: start)
        dispatcher.accept(id: 1, payload: [1], now: start)
        var now = start
        for attempt in 1...2 {
            dispatcher.dispatch(now: now)
            dispatcher.handle(reply([ItemOutcome(id: 1, attempt: UInt16(attempt), status: .deliveredToAggregator(count: 1))]), from: [1], now: now)
            now += .milliseconds(1100)
            dispatcher.handle(.heartbeat, from: [1], now: now)
            dispatcher.effects.removeAll()
            dispatcher.tick(now: now)
        }
        #expect(dispatcher.deadLetteredTotal == 1)
        #expect(dispatcher.pending == 0)
        #expect(dispatcher.stages[0].counters.failed == 2)
    }

    @Test func queuedItemsPastTheirDeadlineAreDeadLettered() {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external, deadline: .milliseconds(100))]))
        dispatcher.accept(id: 1, payload: [], now: start)
        dispatcher.tick(now: start + .milliseconds(150))
        #expect(dispatcher.deadLetteredTotal == 1)
        #expect(dispatcher.pending == 0)
    }

    @Test func higherPriorityItemsGoFirst() throws {
        let dispatcher = Dispatcher(topology: topology([StageSpec(name: "a", handler: .external)]))
        dispatcher.acceptClientRequest(stage: 0, id: 1, payload: [1], client: ClientReturn(peer: [9], service: "a"), now: start)
        var queue = PriorityFIFO<Int>()
        queue.append(1, priority: 0)
        queue.append(2, priority: 5)
        queue.append(3, priority: 0)
        queue.append(4, priority: 5)
        #expect([queue.popFirst(), queue.popFirst(), queue.popFirst(), queue.popFirst()] == [2, 4, 1, 3])
        // A client's request comes back to the client, not to the sink.
        dispatcher.handle(.ready(service: "a", capabilities: lanCompute(credit: 1)), from: [1], now: start)
        dispatcher.dispatch(now: start)
        dispatcher.effects.removeAll()
        dispatcher.handle(reply([ItemOutcome(id: 1, attempt: 1, status: .completed(outputs: [[7]]))]), from: [1], now: start)
        #expect(dispatcher.effects.contains { if case .send([9], ClientMessage(service: "a", body: [[7]]).frames) = $0 { true } else { false } })
        #expect(dispatcher.pending == 0)
    }
}

extension Capabilities {
    func with(_ name: String, _ value: String) -> Capabilities {
        var copy = self
        copy[name] = value
        return copy
    }
}
