// The core with every plain queued item kept compactly: the same dispatch order, journal facts and dead letters as with objects.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreCompactQueueTests {
    /// A core whose queues keep every plain item compactly, from the first.
    static func driver(_ stages: [StageSpec]) -> CoreDriver { CoreDriver(stages, compactQueuesAfter: 0) }

    static func child(_ parent: UInt64, _ index: Int) -> UInt64 { ItemID.derived(parent: parent, stageIndex: 1, outputIndex: index) }

    @Test func waitingSourceItemsGoOutInOrderAndEachFinishesOnce() {
        let driver = Self.driver([StageSpec(name: "a", handler: .external)])
        for id: UInt64 in 0..<5 { driver.feed(.accepted(id: id, payload: [UInt8(id), 42])) }
        #expect(driver.core.queuedCount(stage: 0) == 5)
        driver.ready([1], "a", lanCompute(credit: 10, batch: 10))
        #expect(driver.sentIDs(to: [1]) == [0, 1, 2, 3, 4])
        #expect(driver.requests(to: [1]).flatMap { $0.items.map(\.payload) } == (0..<5).map { [UInt8($0), 42] })
        #expect(driver.core.queuedCount(stage: 0) == 0)
        for id: UInt64 in 0..<5 { driver.delivered([1], id) }
        #expect(driver.finishedSources.isEmpty, "nothing is finished before the aggregator has it")
        driver.feed(.aggregatorAcknowledged(ids: [3, 1]))
        #expect(driver.finishedSources == [3, 1])
        driver.feed(.aggregatorAcknowledged(ids: [0, 2, 4, 4]))
        #expect(driver.finishedSources == [3, 1, 0, 2, 4])
        #expect(driver.core.pending == 0)
    }

    @Test func aSourceItemFinishesOnlyWhenItsWaitingChildrenAreDone() {
        let driver = Self.driver(BrokerCoreResumeTests.splitThenCount)
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.feed(.accepted(id: 7, payload: Array("a b".utf8)))
        driver.completed([1], 7, outputs: [[97], [98]])
        // Both children wait compactly at "count", which has no worker yet.
        #expect(driver.core.queuedCount(stage: 1) == 2)
        #expect(driver.finishedSources.isEmpty)
        driver.ready([2], "count", lanCompute(credit: 10))
        let children = [Self.child(7, 0), Self.child(7, 1)]
        #expect(driver.sentIDs(to: [2]) == children)
        #expect(driver.requests(to: [2]).flatMap { $0.items.map(\.payload) } == [[97], [98]])
        for child in children { driver.delivered([2], child) }
        driver.feed(.aggregatorAcknowledged(ids: [children[0]]))
        #expect(driver.finishedSources.isEmpty, "one of its two outputs is not in the sink yet")
        driver.feed(.aggregatorAcknowledged(ids: [children[1]]))
        #expect(driver.finishedSources == [7])
    }

    @Test func withSeveralEntryStagesACopyStillWaitingKeepsItsSourceItemUnfinished() {
        let driver = Self.driver([StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external)])
        driver.feed(.accepted(id: 5, payload: [5]))
        driver.ready([1], "a", lanCompute(credit: 1))
        let copyA = ItemID.derived(parent: 5, stageIndex: 0, outputIndex: 0)
        let copyB = ItemID.derived(parent: 5, stageIndex: 1, outputIndex: 0)
        #expect(driver.sentIDs(to: [1]) == [copyA])
        driver.delivered([1], copyA)
        driver.feed(.aggregatorAcknowledged(ids: [copyA]))
        #expect(driver.finishedSources.isEmpty, "the copy at b is still queued")
        driver.ready([2], "b", lanCompute(credit: 1))
        driver.delivered([2], copyB)
        driver.feed(.aggregatorAcknowledged(ids: [copyB]))
        #expect(driver.finishedSources == [5])
    }

    @Test func anItemSettledEarlierIsSkippedAndFinishesItsSourceItem() {
        let driver = Self.driver([StageSpec(name: "a", handler: .external)])
        driver.feed(.settledEarlier(ids: [2]))
        for id: UInt64 in 1...3 { driver.feed(.accepted(id: id, payload: [UInt8(id)])) }
        #expect(driver.skipped == [2])
        #expect(driver.finishedSources == [2])
        driver.ready([1], "a", lanCompute(credit: 10))
        #expect(driver.sentIDs(to: [1]) == [1, 3])
    }

    @Test func aRetryGoesAheadOfTheItemsWaitingCompactly() {
        let driver = Self.driver([StageSpec(name: "a", handler: .external, maxAttempts: 3)])
        for id: UInt64 in 0..<3 { driver.feed(.accepted(id: id, payload: [UInt8(id)])) }
        driver.ready([1], "a", lanCompute(credit: 1))
        #expect(driver.sentIDs(to: [1]) == [0])
        driver.failed([1], 0)
        driver.completed([1], 0, attempt: 2)
        driver.completed([1], 1)
        #expect(driver.sentIDs(to: [1]) == [0, 0, 1, 2])
        #expect(driver.requests(to: [1]).map { $0.items[0].header.attempt } == [1, 2, 1, 1])
    }

    @Test func aClientRequestKeepsItsPlaceAmongCompactSourceItems() {
        let driver = Self.driver([StageSpec(name: "a", handler: .external)])
        let client: UInt64 = 1 << 63 | 1
        driver.feed(.accepted(id: 0, payload: [0]))
        driver.feed(.clientRequest(stage: 0, id: client, payload: [9], client: [42], service: "a"))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.delivered([1], 0)
        driver.completed([1], client)
        #expect(driver.sentIDs(to: [1]) == [0, client, 1])
        #expect(driver.requests(to: [1]).map(\.form) == [.batch(forClients: false), .batch(forClients: true), .batch(forClients: false)])
    }

    @Test func higherPriorityItemsOvertakeThoseWaitingCompactly() {
        // "last" takes the outputs of "a" (priority 0) and of "urgent" (priority 5): those of "urgent",
        // queued after, leave first.
        let driver = Self.driver([
            StageSpec(name: "a", handler: .external),
            StageSpec(name: "urgent", handler: .external, priority: 5),
            StageSpec(name: "last", handler: .external, from: ["a", "urgent"]),
        ])
        for id: UInt64 in 0..<2 { driver.feed(.accepted(id: id, payload: [UInt8(id)])) }
        driver.ready([1], "a", lanCompute(credit: 10))
        for id: UInt64 in 0..<2 { driver.completed([1], ItemID.derived(parent: id, stageIndex: 0, outputIndex: 0), outputs: [[10 + UInt8(id)]]) }
        driver.ready([2], "urgent", lanCompute(credit: 10))
        for id: UInt64 in 0..<2 { driver.completed([2], ItemID.derived(parent: id, stageIndex: 1, outputIndex: 0), outputs: [[50 + UInt8(id)]]) }
        #expect(driver.core.queuedCount(stage: 2) == 4)
        driver.ready([3], "last", lanCompute(credit: 10, batch: 10))
        let sent = driver.requests(to: [3]).flatMap(\.items)
        #expect(sent.map(\.payload) == [[50], [51], [10], [11]])
        #expect(sent.map(\.header.priority) == [5, 5, 0, 0])
    }

    @Test func aShutdownDeadLettersWaitingItemsWithTheirPayloads() {
        let driver = Self.driver([StageSpec(name: "a", handler: .external)])
        for id: UInt64 in 0..<4 { driver.feed(.accepted(id: id, payload: [UInt8(id), 1])) }
        driver.feed(.shutDown(reason: .runStopped))
        #expect(driver.deadLetters.map(\.id) == [0, 1, 2, 3])
        #expect(driver.deadLetters.map(\.payload) == (0..<4).map { [UInt8($0), 1] })
        #expect(driver.deadLetters.allSatisfy { $0.reason == .runStopped && $0.attempts == 0 })
        #expect(driver.finishedSources.isEmpty && driver.settled.isEmpty, "abandoned items are unfinished, not settled")
        #expect(driver.core.pending == 0 && driver.core.queuedTotal == 0)
    }
}
