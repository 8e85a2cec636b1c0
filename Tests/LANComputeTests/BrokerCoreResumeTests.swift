// The core's facts for the journal (items settled, source items finished) and its resume input, asserted as returned actions.

import Testing
@testable import LANCompute

extension CoreDriver {
    var settled: [(id: UInt64, root: UInt64, settlement: Settlement)] {
        actions.flatMap { action -> [(id: UInt64, root: UInt64, settlement: Settlement)] in
            if case .itemsSettled(let settlement, let entries) = action { entries.map { ($0.id, $0.root, settlement) } } else { [] }
        }
    }
    var finishedSources: [UInt64] {
        actions.flatMap { action -> [UInt64] in if case .sourceItemsFinished(let roots) = action { roots } else { [] } }
    }
    var skipped: [UInt64] { actions.compactMap { if case .itemSkipped(_, let id) = $0 { id } else { nil } } }
}

@Suite struct BrokerCoreResumeTests {
    static let splitThenCount = [
        StageSpec(name: "split", handler: .external),
        StageSpec(name: "count", handler: .external, from: ["split"]),
    ]
    static func child(_ parent: UInt64, _ index: Int) -> UInt64 { ItemID.derived(parent: parent, stageIndex: 1, outputIndex: index) }

    @Test func aSourceItemFinishesWhenItsLastDescendantIsInTheSink() {
        let driver = CoreDriver(Self.splitThenCount)
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.ready([2], "count", lanCompute(credit: 10))
        driver.feed(.accepted(id: 7, payload: Array("a b".utf8)))
        driver.completed([1], 7, outputs: [[97], [98]])
        for child in [Self.child(7, 0), Self.child(7, 1)] { driver.delivered([2], child) }
        driver.feed(.aggregatorAcknowledged(ids: [Self.child(7, 0)]))
        #expect(driver.settled.map(\.id) == [Self.child(7, 0)])
        #expect(driver.settled.map(\.root) == [7])
        #expect(driver.finishedSources.isEmpty, "one of its two outputs is not in the sink yet")
        driver.feed(.aggregatorAcknowledged(ids: [Self.child(7, 1)]))
        #expect(driver.settled.map(\.settlement) == [.inSink, .inSink])
        #expect(driver.finishedSources == [7])
        // The fact comes after the settlement it depends on, so a journal writes them in that order.
        let last = driver.actions.lastIndex { if case .sourceItemsFinished = $0 { true } else { false } }!
        let settledLast = driver.actions.lastIndex { if case .itemsSettled = $0 { true } else { false } }!
        #expect(settledLast < last)
    }

    @Test func anItemWithNoOutputsFinishesItsSourceItemAtOnce() {
        let driver = CoreDriver(Self.splitThenCount)
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.feed(.accepted(id: 3, payload: []))
        driver.completed([1], 3, outputs: [])
        #expect(driver.finishedSources == [3])
        #expect(driver.settled.isEmpty)
    }

    @Test func admissionAndDeadLettersAreSettlementsButAbandonedItemsAreNot() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 10))
        for id: UInt64 in 1...3 { driver.feed(.accepted(id: id, payload: [UInt8(id)])) }
        driver.feed(.outputsOffered([OfferedOutput(id: 1, epoch: driver.core.epoch, attempt: 1)]))
        driver.failed([1], 2)
        #expect(driver.settled.map(\.id) == [1, 2])
        #expect(driver.settled.map(\.settlement) == [.admitted, .deadLettered])
        #expect(driver.finishedSources == [2], "admitted is not yet in the sink")
        driver.clear()
        // Item 3 is unfinished at shutdown: dead-lettered as such, but neither settled nor finished.
        driver.feed(.shutDown(reason: .runStopped))
        #expect(driver.deadLetters.map(\.id) == [1, 3])
        #expect(driver.settled.isEmpty)
        #expect(driver.finishedSources.isEmpty)
    }

    @Test func clientRequestsAreNotJournalFacts() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.clientRequest(stage: 0, id: 1 << 63 | 1, payload: [1], client: [42], service: "a"))
        driver.completed([1], 1 << 63 | 1)
        #expect(driver.settled.isEmpty)
        #expect(driver.finishedSources.isEmpty)
    }

    @Test func anItemSettledEarlierIsSkippedWhenItsSourceItemIsRedone() {
        let driver = CoreDriver(Self.splitThenCount)
        driver.feed(.settledEarlier(ids: [Self.child(7, 0)]))
        driver.ready([1], "split", lanCompute(credit: 10))
        driver.ready([2], "count", lanCompute(credit: 10))
        driver.feed(.accepted(id: 7, payload: Array("a b".utf8)))
        driver.completed([1], 7, outputs: [[97], [98]])
        #expect(driver.skipped == [Self.child(7, 0)])
        #expect(driver.sentIDs(to: [2]) == [Self.child(7, 1)], "the output already in the sink is not processed again")
        driver.delivered([2], Self.child(7, 1))
        driver.feed(.aggregatorAcknowledged(ids: [Self.child(7, 1)]))
        #expect(driver.finishedSources == [7])
        #expect(driver.core.pending == 0)
    }

    @Test func aSourceItemWhoseOnlyItemSettledEarlierFinishesWithoutWork() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.feed(.settledEarlier(ids: [3]))
        driver.ready([1], "a", lanCompute(credit: 10))
        driver.feed(.accepted(id: 3, payload: [3]))
        driver.feed(.accepted(id: 4, payload: [4]))
        #expect(driver.skipped == [3])
        #expect(driver.finishedSources == [3])
        #expect(driver.sentIDs(to: [1]) == [4])
        // Skipped once: the id is forgotten, so it is not a standing filter.
        driver.feed(.accepted(id: 3, payload: [3]))
        #expect(driver.sentIDs(to: [1]) == [4, 3])
    }
}
