// The broker core's unserved stages and the external stages' default timeout, by the actions it returns.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreUnservedTests {
    func unserved(_ actions: [BrokerAction]) -> [UnservedStageReport] {
        actions.compactMap { if case .stageUnserved(let report) = $0 { report } else { nil } }
    }

    func served(_ actions: [BrokerAction]) -> [String] {
        actions.compactMap { if case .stageServed(_, let name) = $0 { name } else { nil } }
    }

    /// Ticks for `duration`; the `alive` workers heartbeat at each step.
    func tick(_ driver: CoreDriver, for duration: Duration, every step: Duration = .milliseconds(250), alive: [PeerID] = []) {
        var passed = Duration.zero
        while passed < duration {
            driver.advance(step)
            passed += step
            for peer in alive { driver.feed(.worker(peer: peer, message: .heartbeat)) }
            driver.feed(.tick)
        }
    }

    @Test func aStageNoWorkerMeetsIsReportedOnceWithTheReasonsAndItsItemsWaitForAWorkerThatDoes() {
        let driver = CoreDriver([
            StageSpec(name: "gpu", handler: .external, requires: Requirements(labels: ["gpu": "yes"])),
        ])
        driver.ready([1], "gpu", lanCompute(credit: 4, node: "cpu-box"))
        #expect(driver.disconnects([1]) == 1, "a worker without the label is refused")
        driver.feed(.unservedReported(node: "cpu-box", stages: [UnservedStage(stage: "gpu", reason: "needs label gpu=yes")]))
        for id in 0..<3 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        driver.clear()

        tick(driver, for: .milliseconds(1750))
        #expect(unserved(driver.actions).isEmpty, "not before the stage has waited 2 s")
        tick(driver, for: .milliseconds(500))
        let first = unserved(driver.actions)
        #expect(first.count == 1)
        #expect(first.first?.stageName == "gpu" && first.first?.waiting == 3 && first.first?.isNew == true)
        #expect(first.first?.reasons.map(\.node) == ["cpu-box"])
        #expect(first.first?.reasons.map(\.reason) == ["needs label gpu=yes"])
        #expect(driver.core.unservedStages.map(\.stageName) == ["gpu"])

        driver.clear()
        tick(driver, for: .seconds(5))
        #expect(unserved(driver.actions).isEmpty, "said once, not on every tick")

        // Another node's reason is news: published again, but not as a new episode.
        driver.feed(.unservedReported(node: "mac", stages: [UnservedStage(stage: "gpu", reason: "stage file missing")]))
        let again = unserved(driver.actions)
        #expect(again.count == 1 && again.first?.isNew == false && again.first?.reasons.map(\.node) == ["cpu-box", "mac"])

        driver.clear()
        driver.ready([2], "gpu", lanCompute(credit: 4, node: "gpu-box", labels: ["gpu": "yes"]))
        #expect(driver.sentIDs(to: [2]) == [0, 1, 2], "the items waited, none was lost")
        #expect(served(driver.actions) == ["gpu"], "said when the worker joins: a short run can end before the next tick")
        #expect(driver.core.unservedStages.isEmpty)
        driver.feed(.tick)
        #expect(served(driver.actions) == ["gpu"], "and said once")
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func aStageWithoutItemsOrWithAWorkerIsNotReported() {
        let driver = CoreDriver([
            StageSpec(name: "a", handler: .external),
            StageSpec(name: "b", handler: .external, from: ["a"]),
        ])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 0, payload: [0]))
        driver.feed(.accepted(id: 1, payload: [1]))
        tick(driver, for: .seconds(5), every: .milliseconds(100), alive: [[1]])
        #expect(unserved(driver.actions).isEmpty, "a is served (one item waits behind credit 1), b has nothing waiting")
        // Once its worker falls silent and expires, a is unserved: its items wait.
        tick(driver, for: .seconds(4), every: .milliseconds(100))
        #expect(unserved(driver.actions).map(\.stageName) == ["a"])
    }

    @Test func reportsOfANodeThatIsGoneAreForgotten() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.feed(.unservedReported(node: "old", stages: [UnservedStage(stage: "a", reason: "python3 not found")]))
        tick(driver, for: .seconds(31), every: .seconds(1))
        driver.feed(.accepted(id: 0, payload: [0]))
        driver.clear()
        tick(driver, for: .milliseconds(2250))
        let reports = unserved(driver.actions)
        #expect(reports.count == 1 && reports.first?.reasons.isEmpty == true)
    }

    @Test func anExternalStageWithoutATimeoutGetsTheDefaultOne() {
        let driver = CoreDriver([
            StageSpec(name: "plain", handler: .external, maxAttempts: 5),
            StageSpec(name: "own", handler: .external, from: ["plain"], timeout: .seconds(300)),
        ])
        #expect(driver.core.attemptTimeout(stage: 0) == BrokerCore.externalStageTimeout)
        #expect(driver.core.attemptTimeout(stage: 1) == .seconds(300))
        driver.ready([1], "plain", nil)
        driver.feed(.accepted(id: 0, payload: [0]))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.sentIDs(to: [1]) == [0], "a plain worker holds one item at a time")
        // The plain worker heartbeats but never answers: the item times out and the next one gets its turn.
        for _ in 0..<61 {
            driver.advance(.seconds(1))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(driver.retries.map(\.reason) == [.timeout])
        #expect(driver.sentIDs(to: [1]).count == 2)
    }
}
