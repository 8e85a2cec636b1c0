// The broker core's intake inputs: a rejected item goes straight to the dead letters and leaves nothing pending.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreIntakeTests {
    @Test func aRejectedItemIsDeadLetteredAtTheEntryStageAndNotDispatched() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"])])
        driver.ready([1], "a", nil)
        driver.feed(.rejected(id: 4, payload: [9, 9], reason: .tooLarge, detail: "too big"))
        #expect(driver.deadLetters.map(\.id) == [4])
        #expect(driver.deadLetters.first?.stageName == "a")
        #expect(driver.deadLetters.first?.reason == .tooLarge)
        #expect(driver.deadLetters.first?.payload == [9, 9])
        #expect(driver.sentIDs(to: [1]).isEmpty)
        #expect(driver.core.pending == 0)
        // An accepted item beside it still flows.
        driver.feed(.accepted(id: 5, payload: [1]))
        #expect(driver.sentIDs(to: [1]) == [5])
        #expect(driver.core.pending == 1)
    }
}
