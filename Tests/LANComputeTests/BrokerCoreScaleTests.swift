// The broker core with thousands of workers registered: a pick weighs a bounded few, and still spreads items, honours preferences and avoids where a retry failed.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreScaleTests {
    static let count = 5000

    static func peer(_ index: Int) -> PeerID { [UInt8(index >> 8), UInt8(index & 0xff), 0x5c] }

    /// Every item id sent to each peer, from one pass over the driver's actions.
    static func sent(_ driver: CoreDriver) -> [PeerID: [UInt64]] {
        var sent: [PeerID: [UInt64]] = [:]
        for action in driver.actions {
            if case .request(let peer, _, let items) = action { sent[peer, default: []] += items.map(\.header.id) }
        }
        return sent
    }

    @Test func fiveThousandPlainWorkersOfCreditOneEachGetOneItemAndFreedOnesTheNext() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        for index in 0..<Self.count { driver.ready(Self.peer(index), "a", nil) }
        for id in 0..<(Self.count + 1000) { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        let first = Self.sent(driver)
        #expect(first.count == Self.count, "every worker has an item")
        #expect(first.values.allSatisfy { $0.count == 1 }, "none more than its credit")
        #expect(driver.core.queuedCount(stage: 0) == 1000)
        driver.clear()
        // A hundred workers answer: each gets the next item, and nobody else does.
        for index in 0..<100 {
            let id = first[Self.peer(index)]![0]
            let token = ItemToken(id: id, epoch: driver.core.epoch, attempt: 1).bytes
            driver.feed(.worker(peer: Self.peer(index), message: .reply(client: token, body: [[2]])))
        }
        let next = Self.sent(driver)
        #expect(Set(next.keys) == Set((0..<100).map(Self.peer)))
        #expect(next.values.allSatisfy { $0.count == 1 })
        #expect(driver.core.queuedCount(stage: 0) == 900)
    }

    @Test func itemsSpreadOverWorkersBeyondTheOnesOnePickWeighs() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        for index in 0..<Self.count { driver.ready(Self.peer(index), "a", lanCompute(credit: 4, node: "n\(index)")) }
        for id in 0..<Self.count { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        let held = Self.sent(driver).mapValues(\.count)
        // A pick weighs a few workers from a cursor that moves on: the items reach nearly every worker,
        // not the same few again and again, and none takes more than two while others hold none.
        #expect(held.count >= Self.count * 9 / 10, "\(held.count) workers hold items")
        #expect(held.values.max() ?? 0 <= 2)
    }

    @Test func preferredWorkersAmongThousandsGetItemsFirst() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, prefers: Requirements(labels: ["gpu": "yes"]))])
        for index in 0..<Self.count {
            // The ten preferred registered last, behind every other worker.
            let preferred = index >= Self.count - 10
            driver.ready(Self.peer(index), "a", lanCompute(credit: 1, node: "n\(index)", labels: preferred ? ["gpu": "yes"] : [:]))
        }
        let preferred = Set((Self.count - 10)..<Self.count).map(Self.peer)
        for id in 0..<10 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        #expect(Set(Self.sent(driver).keys) == Set(preferred))
        driver.feed(.accepted(id: 10, payload: [1]))
        let eleventh = Self.sent(driver).filter { $0.value.contains(10) }.keys
        #expect(eleventh.count == 1 && !preferred.contains(eleventh.first!), "the preferred are full: another takes it")
        // A preferred worker finishes: the next item is its again.
        let freed = Self.peer(Self.count - 3)
        driver.delivered(freed, Self.sent(driver)[freed]![0])
        driver.clear()
        driver.feed(.accepted(id: 11, payload: [1]))
        #expect(Self.sent(driver) == [freed: [11]])
    }

    @Test func aRetryAmongThousandsGoesToAnotherWorkerThanTheOneItFailedOn() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, maxAttempts: 3)])
        for index in 0..<Self.count { driver.ready(Self.peer(index), "a", lanCompute(credit: 1, node: "n\(index)")) }
        driver.feed(.accepted(id: 1, payload: [1]))
        let (first, _) = Self.sent(driver).first!
        driver.clear()
        driver.failed(first, 1)
        let retried = Self.sent(driver)
        #expect(retried.count == 1 && retried.first?.value == [1])
        #expect(retried.first?.key != first, "the retry leaves the worker it failed on while another can take it")
    }

    @Test func aYieldingWorkerAmongThousandsGetsNothingUntilItStops() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        for index in 0..<Self.count { driver.ready(Self.peer(index), "a", lanCompute(credit: 1, node: "n\(index)")) }
        let owner = Self.peer(0)
        driver.feed(.worker(peer: owner, message: .refresh(capabilities: Capabilities(["yielding": "true"]))))
        for id in 0..<Self.count { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        let sent = Self.sent(driver)
        #expect(sent.count == Self.count - 1 && sent[owner] == nil)
        #expect(driver.core.queuedCount(stage: 0) == 1, "the last item waits: only the yielding worker has credit")
        driver.clear()
        driver.feed(.worker(peer: owner, message: .refresh(capabilities: Capabilities(["yielding": "false"]))))
        #expect(Self.sent(driver) == [owner: [UInt64(Self.count - 1)]])
    }
}
