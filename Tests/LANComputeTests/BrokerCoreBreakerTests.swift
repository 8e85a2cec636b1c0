// The broker core's circuit breakers, by actions and a manual clock: quarantine, cool-down, probe, retries elsewhere.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreBreakerTests {
    static let policy = BreakerPolicy(enabled: true, failures: 3, window: 6, cooldown: .seconds(10))

    func stage(groupBy: KeyExtractor? = nil, breaker: BreakerPolicy = policy, maxAttempts: Int = 10) -> StageSpec {
        StageSpec(name: "a", handler: .external, groupBy: groupBy, maxAttempts: maxAttempts, breaker: breaker)
    }

    func changes(_ driver: CoreDriver) -> [(node: String, state: String)] {
        driver.actions.compactMap { if case .breakerChanged(let change) = $0 { (change.node, change.state.name) } else { nil } }
    }

    /// Answers every REQUEST sent since `from` (an index into `driver.actions`): items sent to a peer in
    /// `failing` fail, the others are delivered and acknowledged; until no REQUEST is left unanswered
    /// or `rounds` runs out. Returns the index to continue from.
    @discardableResult
    func serve(_ driver: CoreDriver, from start: Int = 0, failing: Set<PeerID>, holding: Set<PeerID> = [], rounds: Int = 200) -> Int {
        var next = start
        for _ in 0..<rounds {
            let fresh = driver.actions[next...].compactMap { action -> (PeerID, [DispatchedItem])? in
                if case .request(let peer, _, let items) = action { (peer, items) } else { nil }
            }
            next = driver.actions.count
            let answerable = fresh.filter { !holding.contains($0.0) }
            if answerable.isEmpty { break }
            for (peer, items) in answerable {
                for item in items {
                    if failing.contains(peer) {
                        driver.failed(peer, item.header.id, attempt: item.header.attempt)
                    } else {
                        driver.delivered(peer, item.header.id, attempt: item.header.attempt)
                        driver.feed(.aggregatorAcknowledged(ids: [item.header.id]))
                    }
                }
            }
        }
        return next
    }

    @Test func aWorkerThatFailsEveryItemIsQuarantinedWhileTheOtherFinishesTheStage() {
        let driver = CoreDriver([stage()])
        driver.ready([1], "a", lanCompute(credit: 2, node: "bad"))
        driver.ready([2], "a", lanCompute(credit: 2, node: "good"))
        for id in 0..<40 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        serve(driver, failing: [[1]])
        #expect(Set(driver.inSink) == Set(0..<40), "every item reaches the sink")
        #expect(driver.inSink.count == 40, "once each")
        #expect(driver.deadLetters.isEmpty)
        #expect(changes(driver).map(\.node) == ["bad"])
        #expect(changes(driver).map(\.state) == ["open"])
        // Opened after its third failure; it had credit 2, so at most 4 items ever went to it.
        #expect(driver.sentIDs(to: [1]).count <= 4)
        let opened = driver.actions.compactMap { if case .breakerChanged(let change) = $0 { change } else { nil } }.first
        #expect(opened?.failures == 3 && opened?.cooldown == .seconds(10) && opened?.peer == [1] && opened?.stageName == "a")
        #expect(driver.core.nodeSummaries(now: driver.now).first { $0.node == "bad" }?.breakers.map(\.state) == [.open(until: driver.now + .seconds(10))])
    }

    @Test func afterTheCoolDownOneProbeDecidesAFailureReopensForTwiceAsLongASuccessCloses() {
        let driver = CoreDriver([stage()])
        driver.ready([1], "a", lanCompute(credit: 4, batch: 4, node: "bad"))
        driver.ready([2], "a", lanCompute(credit: 1, node: "good"))
        for id in 0..<6 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        // bad took 0...3 (credit 4), good took 4. good's success makes it healthy; bad's three failures open it.
        driver.delivered([2], 4)
        driver.feed(.aggregatorAcknowledged(ids: [4]))
        for id: UInt64 in [0, 1, 2] { driver.failed([1], id) }
        #expect(changes(driver).map(\.state) == ["open"])
        driver.failed([1], 3)
        driver.clear()
        // good holds one item; the rest wait for it, not for bad.
        for id in 10..<14 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        driver.advance(.seconds(9))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.worker(peer: [2], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.sentIDs(to: [1]).isEmpty, "quarantined for its cool-down")
        driver.advance(.seconds(1))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.worker(peer: [2], message: .heartbeat))
        driver.feed(.tick)
        #expect(changes(driver).map(\.state) == ["probing"])
        let probe = driver.sentIDs(to: [1])
        #expect(probe.count == 1, "one probe, although it has credit for four")
        driver.failed([1], probe[0], attempt: driver.requests(to: [1])[0].items[0].header.attempt)
        let reopened = driver.actions.compactMap { if case .breakerChanged(let change) = $0 { change } else { nil } }.last
        #expect(reopened?.state == .open(until: driver.now + .seconds(20)) && reopened?.cooldown == .seconds(20))
        driver.clear()
        for step in 0..<2 {
            driver.advance(.seconds(10))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.worker(peer: [2], message: .heartbeat))
            driver.feed(.tick)
            #expect(changes(driver).isEmpty == (step == 0))
        }
        let second = driver.requests(to: [1]).flatMap(\.items)
        #expect(second.count == 1)
        driver.delivered([1], second[0].header.id, attempt: second[0].header.attempt)
        driver.feed(.aggregatorAcknowledged(ids: [second[0].header.id]))
        #expect(changes(driver).map(\.state) == ["probing", "closed"])
        #expect(driver.requests(to: [1]).flatMap(\.items).count > 1, "closed: it takes items up to its credit again")
    }

    @Test func aFailedItemIsRetriedOnAnotherWorkerAndOnTheSameOneOnlyWhenNoOtherQualifies() {
        let driver = CoreDriver([stage(breaker: .off)])
        driver.ready([1], "a", lanCompute(credit: 5, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 5, node: "n2"))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.sentIDs(to: [1]) == [1], "equal credit: the first registered")
        driver.failed([1], 1)
        #expect(driver.sentIDs(to: [2]) == [1], "the retry leaves the worker it failed on, though that one has as much credit")
        driver.failed([2], 1, attempt: 2)
        #expect(driver.sentIDs(to: [1]) == [1, 1], "failed on both: any will do")
        #expect(driver.requests(to: [1]).last?.items.first?.header.attempt == 3)
    }

    @Test func aRetryWaitsForTheOtherWorkersCreditRatherThanReturnToTheOneItFailedOn() {
        let driver = CoreDriver([stage(breaker: .off)])
        driver.ready([1], "a", lanCompute(credit: 2, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 1, node: "n2"))
        for id: UInt64 in 1...3 { driver.feed(.accepted(id: id, payload: [1])) }
        #expect(driver.sentIDs(to: [1]) == [1, 2])
        #expect(driver.sentIDs(to: [2]) == [3])
        driver.failed([1], 1)
        #expect(driver.sentIDs(to: [1]) == [1, 2], "n2 is busy, and the item waits for it although n1 has credit")
        driver.delivered([2], 3)
        driver.feed(.aggregatorAcknowledged(ids: [3]))
        #expect(driver.sentIDs(to: [2]) == [3, 1])
        driver.feed(.worker(peer: [2], message: .disconnect))
        #expect(driver.sentIDs(to: [1]) == [1, 2, 1], "n2 went away: the only worker left takes it")
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func aGroupedItemLeavesItsPinnedWorkerForItsRetryAndItsKeyStays() throws {
        let driver = CoreDriver([stage(groupBy: .field(0), breaker: .off)])
        driver.ready([1], "a", lanCompute(credit: 10, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 10, node: "n2"))
        driver.feed(.accepted(id: 1, payload: Array("k x".utf8)))
        let pinned: PeerID = driver.sentIDs(to: [1]) == [1] ? [1] : [2]
        let other: PeerID = pinned == [1] ? [2] : [1]
        #expect(driver.sentIDs(to: pinned) == [1])
        driver.failed(pinned, 1)
        #expect(driver.sentIDs(to: other) == [1], "the retry goes to the other worker")
        driver.feed(.accepted(id: 2, payload: Array("k y".utf8)))
        #expect(driver.sentIDs(to: pinned) == [1, 2], "the key itself stays pinned")
    }

    @Test func aQuarantinedWorkerLosesItsKeysAndGetsThemBackWhenItProbes() {
        let driver = CoreDriver([stage(groupBy: .field(0))])
        driver.ready([1], "a", lanCompute(credit: 10, batch: 10, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 10, batch: 10, node: "n2"))
        for id in 0..<40 { driver.feed(.accepted(id: UInt64(id), payload: Array("k\(id % 8) x".utf8))) }
        let keysOfBad = Set(driver.requests(to: [1]).flatMap(\.items).map(\.header.key))
        #expect(!keysOfBad.isEmpty && keysOfBad.count < 8)
        serve(driver, failing: [[1]])
        #expect(Set(driver.inSink) == Set(0..<40))
        #expect(changes(driver).map(\.state) == ["open"])
        driver.clear()
        for id in 100..<110 { driver.feed(.accepted(id: UInt64(id), payload: Array("k\(id % 8) x".utf8))) }
        #expect(driver.sentIDs(to: [1]).isEmpty, "its keys went to n2 while it is quarantined")
        #expect(driver.sentIDs(to: [2]).count == 10)
    }

    @Test func whenEveryQualifyingWorkerIsQuarantinedItemsWaitAndTheStageIsReportedUnserved() {
        let driver = CoreDriver([stage(maxAttempts: 2)])
        driver.ready([1], "a", lanCompute(credit: 3, node: "bad"))
        driver.ready([2], "a", lanCompute(credit: 1, node: "good"))
        for id in 0..<4 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        driver.delivered([2], 3)
        driver.feed(.aggregatorAcknowledged(ids: [3]))
        for id: UInt64 in [0, 1, 2] { driver.failed([1], id) }
        #expect(changes(driver).map(\.state) == ["open"])
        driver.feed(.worker(peer: [2], message: .disconnect))
        driver.clear()
        for id in 10..<15 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        for _ in 0..<36 {
            driver.advance(.milliseconds(250))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(driver.sentIDs(to: [1]).isEmpty, "9 s: still quarantined, and the only worker left")
        #expect(driver.deadLetters.isEmpty, "waiting items are not dead-lettered for it")
        let unserved = driver.actions.compactMap { if case .stageUnserved(let report) = $0 { report } else { nil } }
        #expect(unserved.count == 1)
        #expect(unserved.first?.waiting == 8)
        #expect(unserved.first?.reasons.map(\.node) == ["bad"])
        #expect(unserved.first?.reasons.first?.reason.contains("quarantined by the circuit breaker") == true)
        #expect(driver.core.unservedStages.map(\.stageName) == ["a"])
        for _ in 0..<4 {
            driver.advance(.milliseconds(250))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(changes(driver).map(\.state) == ["probing"])
        #expect(driver.sentIDs(to: [1]).count == 1, "the probe")
        #expect(driver.actions.contains { if case .stageServed = $0 { true } else { false } })
    }

    @Test func whenEveryWorkerFailsNoneIsQuarantinedAndItemsAreDeadLetteredAsBefore() {
        let driver = CoreDriver([stage(maxAttempts: 2)])
        driver.ready([1], "a", lanCompute(credit: 2, node: "n1"))
        driver.ready([2], "a", lanCompute(credit: 2, node: "n2"))
        for id in 0..<20 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        serve(driver, failing: [[1], [2]])
        #expect(changes(driver).isEmpty, "the stage fails everywhere: no worker is to blame")
        #expect(driver.deadLetters.count == 20)
        #expect(driver.deadLetters.allSatisfy { $0.reason == .attemptsExhausted })
    }

    @Test func timeoutsCountAgainstTheBreakerAndBreakerFalseTurnsItOff() {
        for policy in [Self.policy, .off] {
            let driver = CoreDriver([StageSpec(name: "a", handler: .external, timeout: .seconds(1), maxAttempts: 10, breaker: policy)],
                                    heartbeat: .seconds(1))
            driver.ready([1], "a", lanCompute(credit: 1, node: "slow"))
            driver.ready([2], "a", lanCompute(credit: 1, node: "fine"))
            for id in 0..<30 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
            for _ in 0..<40 {
                // fine answers everything it holds; slow never answers and times out.
                let held = driver.requests(to: [2]).flatMap(\.items).filter { !driver.inSink.contains($0.header.id) }
                for item in held {
                    driver.delivered([2], item.header.id, attempt: item.header.attempt)
                    driver.feed(.aggregatorAcknowledged(ids: [item.header.id]))
                }
                driver.advance(.milliseconds(600))
                driver.feed(.worker(peer: [1], message: .heartbeat))
                driver.feed(.worker(peer: [2], message: .heartbeat))
                driver.feed(.tick)
            }
            #expect(changes(driver).map(\.state).first == (policy.enabled ? "open" : nil))
            #expect(Set(driver.inSink) == Set(0..<30))
            if !policy.enabled {
                let breakers = driver.core.nodeSummaries(now: driver.now).flatMap(\.breakers)
                #expect(breakers.isEmpty)
            }
        }
    }

    @Test func aWorkerThatRegistersAgainKeepsItsQuarantine() {
        let driver = CoreDriver([stage()])
        driver.ready([1], "a", lanCompute(credit: 3, node: "bad"))
        driver.ready([2], "a", lanCompute(credit: 1, node: "good"))
        for id in 0..<4 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        driver.delivered([2], 3)
        driver.feed(.aggregatorAcknowledged(ids: [3]))
        for id: UInt64 in [0, 1, 2] { driver.failed([1], id) }
        driver.feed(.worker(peer: [1], message: .disconnect))
        driver.clear()
        driver.ready([3], "a", lanCompute(credit: 3, node: "bad"))
        for id in 10..<13 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        #expect(driver.sentIDs(to: [3]).isEmpty, "the same process (node) on a new connection is still quarantined")
    }
}
