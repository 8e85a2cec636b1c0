// What the broker core lets a worker hold whatever it announces: the credit cap, the stall timeout, replies that prove nothing.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreLimitsTests {
    @Test func aHugeCreditIsCutToTheBrokersCap() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], limits: WorkerLimits(maxCredit: 16))
        driver.ready([1], "a", lanCompute(credit: 1_000_000_000, batch: 1_000_000))
        for id in 0..<100 { driver.feed(.accepted(id: UInt64(id), payload: [UInt8(id)])) }
        #expect(driver.sentIDs(to: [1]).count == 16)
        #expect(driver.requests(to: [1]).allSatisfy { $0.items.count <= 16 })
        #expect(driver.actions.contains { if case .workerJoined(let joined) = $0 { joined.credit == 16 } else { false } })
        // A second worker gets the rest of the stage instead of waiting behind the greedy one.
        driver.ready([2], "a", lanCompute(credit: 4, node: "n2"))
        #expect(driver.sentIDs(to: [2]).count == 4)
    }

    @Test func theDefaultCapHoldsWithoutAnyTopologySetting() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: Int.max, batch: 64))
        for id in 0..<3000 { driver.feed(.accepted(id: UInt64(id), payload: [])) }
        #expect(driver.sentIDs(to: [1]).count == WorkerLimits.defaultMaxCredit)
    }

    @Test func aStagesCreditIsTheCapForItsWorkers() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, credit: 3)])
        driver.ready([1], "a", lanCompute(credit: 500, batch: 500))
        for id in 0..<10 { driver.feed(.accepted(id: UInt64(id), payload: [])) }
        #expect(driver.sentIDs(to: [1]).count == 3)
    }

    @Test func aWorkerThatHoldsItemsWithoutProgressIsExpiredOnAStageWithoutTimeout() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], limits: WorkerLimits(stallTimeout: .seconds(10)))
        driver.ready([1], "a", lanCompute(credit: 2, batch: 2))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.feed(.accepted(id: 2, payload: [2]))
        #expect(driver.sentIDs(to: [1]) == [1, 2])
        // It heartbeats faithfully, so the liveness check alone would keep it forever.
        for _ in 0..<19 {
            driver.advance(.milliseconds(500))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(!driver.actions.contains { if case .workerLeft = $0 { true } else { false } })
        driver.advance(.milliseconds(500))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.actions.contains { if case .workerLeft([1], "a", .expired, _, 2) = $0 { true } else { false } })
        #expect(driver.disconnects([1]) == 1)
        // Both were held by the stalled worker, so both are suspects: the next worker gets them one at a time.
        driver.ready([2], "a", lanCompute(credit: 2, node: "n2"))
        #expect(driver.sentIDs(to: [2]) == [1])
        driver.delivered([2], 1, attempt: 2)
        #expect(driver.sentIDs(to: [2]) == [1, 2])
    }

    @Test func aWorkerThatFinishesItemsIsNotStalledAndAnIdleOneNeverIs() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], limits: WorkerLimits(stallTimeout: .seconds(2)))
        driver.ready([1], "a", lanCompute(credit: 1))
        // Idle for longer than the stall timeout: nothing to finish, nothing stalls.
        for _ in 0..<10 {
            driver.advance(.milliseconds(500))
            driver.feed(.worker(peer: [1], message: .heartbeat))
            driver.feed(.tick)
        }
        // Then one item every 1.5 s, each finished just before the next: steady progress.
        for id in 1...5 {
            driver.feed(.accepted(id: UInt64(id), payload: []))
            for _ in 0..<3 {
                driver.advance(.milliseconds(500))
                driver.feed(.worker(peer: [1], message: .heartbeat))
                driver.feed(.tick)
            }
            driver.delivered([1], UInt64(id))
        }
        #expect(!driver.actions.contains { if case .workerLeft = $0 { true } else { false } })
        #expect(driver.sentIDs(to: [1]) == [1, 2, 3, 4, 5])
    }

    @Test func malformedRepliesDoNotKeepAWorkerAlive() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        driver.ready([1], "a", lanCompute(credit: 1))
        driver.feed(.accepted(id: 1, payload: [1]))
        // Liveness is 3 x 500 ms: a stream of garbage REPLYs for 2 s must not count as a sign of life.
        for _ in 0..<20 {
            driver.advance(.milliseconds(100))
            driver.feed(.worker(peer: [1], message: .reply(client: [], body: [[0xEE, 0, 0]])))
            driver.feed(.tick)
        }
        #expect(driver.protocolErrors.filter { $0 == .malformedMessage }.count >= 14)
        #expect(driver.actions.contains { if case .workerLeft([1], "a", .expired, _, 1) = $0 { true } else { false } })
    }

    @Test func clientRequestsBeyondTheByteLimitAreRefusedAtOnceUntilEarlierOnesAreAnswered() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)], limits: WorkerLimits(clientRequestBytes: 10))
        func request(_ number: UInt64) -> [BrokerAction] {
            driver.feed(.clientRequest(stage: 0, id: (1 << 63) | number, payload: [UInt8](repeating: 7, count: 4), client: [9], service: "a"))
        }
        func refusals(_ actions: [BrokerAction]) -> [String] {
            actions.compactMap { action in
                guard case .clientReply([9], "a", let body) = action, body.first == Array("error".utf8), body.count == 2 else { return nil }
                return String(decoding: body[1], as: UTF8.self)
            }
        }
        #expect(refusals(request(1)).isEmpty)
        #expect(refusals(request(2)).isEmpty)
        // 4 + 4 bytes are held; 4 more would make 12 of 10.
        let refused = refusals(request(3))
        #expect(refused.count == 1 && refused[0].hasPrefix("LC3008: "), "\(refused)")
        #expect(driver.protocolErrors == [.clientRequestsFull])
        // A worker answers the first: its bytes are free again, and the next request is taken.
        driver.ready([1], "a", lanCompute(credit: 1))
        #expect(driver.sentIDs(to: [1]) == [(1 << 63) | 1])
        driver.completed([1], (1 << 63) | 1)
        #expect(driver.actions.contains { if case .clientReply([9], "a", [[1]]) = $0 { true } else { false } })
        #expect(refusals(request(4)).isEmpty)
    }
}
