// The core's ledger: the items each worker holds, and when a source item's last descendant has settled.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreLedgerTests {
    static func child(_ parent: UInt64, _ index: Int) -> UInt64 { ItemID.derived(parent: parent, stageIndex: 1, outputIndex: index) }

    static func attemptsCompleted(_ driver: CoreDriver) -> Int {
        driver.actions.reduce(0) { total, action in if case .stageCounts(_, _, let latencies) = action { total + latencies.count } else { total } }
    }

    @Test func aRejectedItemFinishesItsSourceItem() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.feed(.rejected(id: 4, payload: [9], reason: .tooLarge, detail: "too big"))
        #expect(driver.settled.map(\.id) == [4])
        #expect(driver.settled.map(\.settlement) == [.deadLettered])
        #expect(driver.finishedSources == [4])
    }

    @Test func sourceItemsWithAndWithoutChildrenEachFinishOnceWithTheirLastDescendant() {
        let driver = CoreDriver(BrokerCoreResumeTests.splitThenCount)
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.ready([2], "count", lanCompute(credit: 10))
        for id: UInt64 in 7...9 { driver.feed(.accepted(id: id, payload: [UInt8(id)])) }
        driver.completed([1], 7, outputs: [[1], [2]])
        // No outputs at a stage that is not the last: its source item is done at once, whatever its neighbours do.
        driver.completed([1], 8, outputs: [])
        #expect(driver.finishedSources == [8])
        driver.completed([1], 9, outputs: [[3]])
        for child in [Self.child(7, 0), Self.child(7, 1), Self.child(9, 0)] { driver.delivered([2], child) }
        driver.feed(.aggregatorAcknowledged(ids: [Self.child(7, 1), Self.child(9, 0)]))
        #expect(driver.finishedSources == [8, 9], "7 has an output that is not in the sink yet")
        driver.feed(.aggregatorAcknowledged(ids: [Self.child(7, 0), Self.child(7, 0)]))
        #expect(driver.finishedSources == [8, 9, 7])
        #expect(driver.core.pending == 0)
    }

    @Test func aSourceItemFinishesWithTheLastOfChildrenSkippedDeadLetteredAndInTheSink() {
        let driver = CoreDriver([
            StageSpec(name: "split", handler: .external),
            StageSpec(name: "count", handler: .external, from: ["split"], maxAttempts: 1),
        ])
        driver.feed(.settledEarlier(ids: [Self.child(7, 0)]))
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.ready([2], "count", lanCompute(credit: 10))
        driver.feed(.accepted(id: 7, payload: [7]))
        driver.completed([1], 7, outputs: [[1], [2], [3]])
        #expect(driver.skipped == [Self.child(7, 0)])
        #expect(driver.sentIDs(to: [2]) == [Self.child(7, 1), Self.child(7, 2)])
        driver.failed([2], Self.child(7, 1))
        #expect(driver.deadLetters.map(\.id) == [Self.child(7, 1)])
        #expect(driver.finishedSources.isEmpty, "one output is still in flight")
        driver.delivered([2], Self.child(7, 2))
        driver.feed(.aggregatorAcknowledged(ids: [Self.child(7, 2)]))
        #expect(driver.finishedSources == [7])
    }

    @Test func withSeveralEntryStagesACopySettledEarlierLeavesTheSourceItemToTheOtherCopy() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external)])
        let copyA = ItemID.derived(parent: 5, stageIndex: 0, outputIndex: 0)
        let copyB = ItemID.derived(parent: 5, stageIndex: 1, outputIndex: 0)
        driver.feed(.settledEarlier(ids: [copyA]))
        driver.feed(.accepted(id: 5, payload: [5]))
        #expect(driver.skipped == [copyA])
        #expect(driver.finishedSources.isEmpty, "the copy at b is still to be done")
        driver.ready([2], "b", lanCompute(credit: 1))
        driver.delivered([2], copyB)
        driver.feed(.aggregatorAcknowledged(ids: [copyB]))
        #expect(driver.finishedSources == [5])
    }

    @Test func anAckThatOvertakesTheReplyFreesTheCreditAndTheLateReplyIsIgnored() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        for id: UInt64 in 1...2 { driver.feed(.accepted(id: id, payload: [UInt8(id)])) }
        #expect(driver.sentIDs(to: [1]) == [1])
        driver.feed(.outputsOffered([OfferedOutput(id: 1, epoch: driver.core.epoch, attempt: 1)]))
        driver.feed(.aggregatorAcknowledged(ids: [1]))
        #expect(driver.sentIDs(to: [1]) == [1, 2], "the acknowledged item no longer holds the worker's credit")
        #expect(Self.attemptsCompleted(driver) == 1)
        driver.delivered([1], 1)
        #expect(Self.attemptsCompleted(driver) == 1, "the late reply counts nothing twice")
        driver.delivered([1], 2)
        driver.feed(.aggregatorAcknowledged(ids: [2]))
        #expect(driver.finishedSources == [1, 2])
        #expect(driver.core.pending == 0)
    }

    @Test func aStuckFirstItemKeepsItsSlotAndCreditWhileManyAfterItFinish() {
        // Two slots, credit 4: item 0 never finishes while items after it come and go, far more of
        // them than the worker ever holds at once.
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, timeout: .seconds(10), maxAttempts: 3)])
        driver.ready([1], "a", lanCompute(credit: 4, batch: 4, slots: 2))
        for id: UInt64 in 0..<300 { driver.feed(.accepted(id: id, payload: [UInt8(id % 256)])) }
        #expect(driver.sentIDs(to: [1]) == [0, 1, 2, 3])
        driver.advance(.seconds(6))
        // Outputs handed over in the REPLY are admitted at once: those items no longer go back with the worker.
        for id: UInt64 in 1...200 { driver.completed([1], id) }
        // Each finished item made room for exactly one more: the stuck one still counts against the credit.
        #expect(driver.sentIDs(to: [1]) == Array(0..<204))
        driver.clear()
        // Item 0 started 11 s ago and times out; 201 started 5 s ago (when 200 finished) and does not.
        driver.advance(.seconds(5))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.retries.map(\.id) == [0])
        #expect(driver.retries.map(\.reason) == [.timeout])
        #expect(driver.sentIDs(to: [1]) == [0], "its retry takes the credit it gave back")
        driver.clear()
        // Its slot went to 202 only now, so 5.5 s on only 201 has run for longer than the timeout.
        driver.advance(.milliseconds(5500))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.retries.map(\.id) == [201])
        #expect(driver.sentIDs(to: [1]) == [201])
        driver.clear()
        driver.feed(.worker(peer: [1], message: .disconnect))
        #expect(driver.retries.map(\.id) == [203, 202, 201, 0])
        #expect(driver.actions.contains { if case .workerLeft([1], _, .disconnect, _, 4) = $0 { true } else { false } })
        driver.ready([2], "a", lanCompute(credit: 4, batch: 4))
        #expect(driver.sentIDs(to: [2]) == [0, 201, 202, 203])
    }
}
