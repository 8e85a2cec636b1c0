// The broker core and a worker's credit refresh: probes echoed, a raised credit used at once, a lowered one that strands and duplicates nothing.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreCreditTests {
    func refresh(_ driver: CoreDriver, _ peer: PeerID, probe: UInt64? = nil, credit: Int?, roundTrip: Duration? = nil) -> [BrokerAction] {
        driver.feed(.worker(peer: peer, message: .refresh(capabilities: .creditRefresh(probe: probe, credit: credit, roundTrip: roundTrip))))
    }

    func accept(_ driver: CoreDriver, _ ids: ClosedRange<UInt64>) {
        for id in ids { driver.feed(.accepted(id: id, payload: [UInt8(truncatingIfNeeded: id)])) }
    }

    func credits(_ actions: [BrokerAction]) -> [(from: Int, to: Int)] {
        actions.compactMap { if case .workerCreditChanged(_, _, let from, let to, _) = $0 { (from, to) } else { nil } }
    }

    @Test func aProbeIsEchoedAtOnceToTheConnectionThatSentIt() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 2))
        driver.ready([2], "a", lanCompute(credit: 2, node: "n2"))
        let actions = refresh(driver, [2], probe: 41, credit: nil)
        #expect(actions.contains { if case .probeEcho([2], 41) = $0 { true } else { false } })
        #expect(!actions.contains { if case .probeEcho([1], _) = $0 { true } else { false } })
        #expect(credits(actions).isEmpty)
    }

    @Test func aRaisedCreditIsUsedAtOnce() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 2, batch: 8))
        accept(driver, 1...20)
        #expect(driver.sentIDs(to: [1]) == [1, 2])
        let actions = refresh(driver, [1], credit: 10, roundTrip: .milliseconds(100))
        #expect(credits(actions).map(\.to) == [10])
        // Eight more go out in the same turn, in one REQUEST: the batch was cut to the old credit, now to the new.
        #expect(driver.sentIDs(to: [1]) == Array(1...10))
        #expect(driver.requests(to: [1]).last?.items.count == 8)
        let report = driver.core.nodeSummaries(now: driver.now)
        #expect(report.first?.credits == ["a": 10])
        #expect(report.first?.roundTrip == .milliseconds(100))
    }

    @Test func aLoweredCreditHoldsBackItemsUntilTheWorkerHoldsFewerAndLosesNone() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 6, batch: 6))
        accept(driver, 1...12)
        #expect(driver.sentIDs(to: [1]) == Array(1...6))
        let sentBefore = driver.sentIDs(to: [1])
        driver.clear()
        let actions = refresh(driver, [1], credit: 2)
        #expect(credits(actions).map { [$0.from, $0.to] } == [[6, 2]])
        // What it holds stays with it: nothing retried, nothing sent again.
        #expect(driver.retries.isEmpty)
        #expect(driver.sentIDs(to: [1]).isEmpty)
        // Four answers leave it holding two: still nothing new.
        for id in UInt64(1)...4 { driver.completed([1], id) }
        #expect(driver.sentIDs(to: [1]).isEmpty)
        // The fifth leaves it one under the credit: one item goes.
        driver.completed([1], 5)
        #expect(driver.sentIDs(to: [1]) == [7])
        // Answering the oldest each time: never more than two held again, and every item answered once.
        for _ in 0..<20 {
            let answered = Set(driver.forwarded.map(\.id))
            let held = Set(sentBefore + driver.sentIDs(to: [1])).subtracting(answered)
            #expect(held.count <= 2)
            guard let next = held.min() else { break }
            driver.completed([1], next)
        }
        #expect(driver.forwarded.map(\.id).sorted() == Array(1...12))
        let everySend = sentBefore + driver.sentIDs(to: [1])
        #expect(Set(everySend).count == everySend.count)
    }

    @Test func creditZeroSendsNothingMoreAndARaiseResumes() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 2))
        driver.ready([2], "a", lanCompute(credit: 2, node: "n2"))
        _ = refresh(driver, [1], credit: 0)
        accept(driver, 1...4)
        #expect(driver.sentIDs(to: [1]).isEmpty)
        #expect(driver.sentIDs(to: [2]) == [1, 2])
        _ = refresh(driver, [1], credit: 2)
        #expect(driver.sentIDs(to: [1]) == [3, 4])
    }

    @Test func theCreditStaysWithinMaxCreditAndTheStagesCredit() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"], credit: 3)],
                                limits: WorkerLimits(maxCredit: 5))
        driver.ready([1], "a", lanCompute(credit: 2))
        driver.ready([2], "b", lanCompute(credit: 2))
        #expect(credits(refresh(driver, [1], credit: 500)).map(\.to) == [5])
        #expect(credits(refresh(driver, [2], credit: 500)).map(\.to) == [3])
        // Asking again for what it has already changes nothing.
        #expect(credits(refresh(driver, [1], credit: 9)).isEmpty)
        // A refresh without a credit (or with a bad one) leaves it as it is.
        #expect(credits(driver.feed(.worker(peer: [1], message: .refresh(capabilities: Capabilities(["credit": "-1", "load.1": "0.5"]))))).isEmpty)
        accept(driver, 1...9)
        #expect(driver.sentIDs(to: [1]).count == 5)
    }
}
