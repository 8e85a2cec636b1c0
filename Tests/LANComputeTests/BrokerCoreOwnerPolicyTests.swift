// The broker core and a worker that yields to its machine's owner: no new items, handed-back items go elsewhere, one event per change.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreOwnerPolicyTests {
    func yielding(_ value: Bool) -> WorkerMessage {
        .refresh(capabilities: Capabilities(["yielding": value ? "true" : "false", "owner.load": "1.90"]))
    }

    var changes: (CoreDriver) -> [(String, Bool)] = { driver in
        driver.actions.compactMap { if case .nodeYielding(let node, _, let yielding, _) = $0 { (node, yielding) } else { nil } }
    }

    @Test func aYieldingWorkerGetsNothingNewAndItsHandedBackItemsGoToAnotherWithoutAnAttempt() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 1)])
        driver.ready([1], "a", lanCompute(credit: 4, node: "owned"))
        for id in 1...3 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        #expect(driver.sentIDs(to: [1]) == [1, 2, 3])
        driver.feed(.worker(peer: [1], message: yielding(true)))
        #expect(changes(driver).count == 1 && changes(driver).first! == ("owned", true))
        driver.ready([2], "a", lanCompute(credit: 4, node: "spare"))
        driver.feed(.accepted(id: 4, payload: [4]))
        #expect(driver.sentIDs(to: [1]) == [1, 2, 3], "a yielding worker is sent nothing new")
        #expect(driver.sentIDs(to: [2]) == [4])
        // It hands back the two it had not started; they go to the other worker at their first attempt.
        driver.reply([1], [2, 3].map { ItemOutcome(id: $0, epoch: driver.core.epoch, attempt: 1, status: .returned) })
        #expect(driver.sentIDs(to: [2]) == [4, 2, 3])
        #expect(driver.requests(to: [2]).flatMap(\.items).allSatisfy { $0.header.attempt == 1 })
        #expect(driver.retries.map(\.reason) == [.handedBack, .handedBack])
        driver.delivered([1], 1)
        for id: UInt64 in [4, 2, 3] { driver.delivered([2], id) }
        driver.feed(.aggregatorAcknowledged(ids: [1, 2, 3, 4]))
        #expect(Set(driver.inSink) == [1, 2, 3, 4] && driver.inSink.count == 4)
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func aYieldingWorkerStaysRegisteredOnItsHeartbeatsAndResumesTakingItems() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], heartbeat: .milliseconds(100), liveness: 3)
        driver.ready([1], "a", lanCompute(credit: 2, node: "owned"))
        driver.feed(.worker(peer: [1], message: yielding(true)))
        for id in 1...2 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        for _ in 0..<20 {
            driver.advance(.milliseconds(100))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(!driver.actions.contains { if case .workerLeft = $0 { true } else { false } })
        #expect(!driver.actions.contains { if case .stageUnserved = $0 { true } else { false } }, "a yielding worker serves its stage")
        #expect(driver.sentIDs(to: [1]).isEmpty)
        driver.feed(.worker(peer: [1], message: yielding(false)))
        #expect(driver.sentIDs(to: [1]) == [1, 2])
        #expect(changes(driver).map(\.1) == [true, false])
    }

    @Test func oneEventPerChangeWhateverTheNumberOfStagesItServes() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"])])
        driver.ready([1], "a", lanCompute(credit: 2, node: "owned"))
        driver.ready([2], "b", lanCompute(credit: 2, node: "owned"))
        driver.feed(.worker(peer: [1], message: yielding(true)))
        driver.feed(.worker(peer: [2], message: yielding(true)))
        driver.feed(.worker(peer: [1], message: yielding(true)))
        #expect(changes(driver).count == 1)
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.sentIDs(to: [1]).isEmpty, "both of the node's workers yield")
    }

    @Test func aReadyThatSaysYieldingGetsNoItems() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        var capabilities = lanCompute(credit: 2, node: "owned")
        capabilities["yielding"] = "true"
        driver.ready([1], "a", capabilities)
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.sentIDs(to: [1]).isEmpty)
    }
}
