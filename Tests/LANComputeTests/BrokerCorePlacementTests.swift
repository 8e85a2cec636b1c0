// The broker core placing items on what workers detected: GPU requirements, load-aware choice, spread over hosts.

import Testing
@testable import LANCompute

@Suite struct BrokerCorePlacementTests {
    static func worker(credit: Int, node: String, host: String, extra: [String: String] = [:]) -> Capabilities {
        var capabilities = lanCompute(credit: credit, node: node)
        capabilities["host"] = host
        for (name, value) in extra { capabilities[name] = value }
        return capabilities
    }

    func itemsByHost(_ driver: CoreDriver, _ hosts: [PeerID: String]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for (peer, host) in hosts { counts[host, default: 0] += driver.sentIDs(to: peer).count }
        return counts
    }

    @Test func spreadBalancesTheItemsEachHostHoldsNotEachProcess() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, spread: true)])
        let hosts: [PeerID: String] = [[1]: "h2", [2]: "h2", [3]: "h2", [4]: "h3"]
        for peer in hosts.keys.sorted(by: { $0[0] < $1[0] }) {
            driver.ready(peer, "a", Self.worker(credit: 2, node: "n\(peer[0])", host: hosts[peer]!))
        }
        for id in 0..<20 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        // h3 is full at 2; h2 holds as many, though its three processes have credit for 6.
        #expect(itemsByHost(driver, hosts) == ["h2": 2, "h3": 2])
        // h3 finishes one: the next item goes to h3, which now holds fewer.
        let h3First = driver.sentIDs(to: [4])[0]
        let (h2Peer, h2First) = [PeerID([1]), [2], [3]].compactMap { peer in driver.sentIDs(to: peer).first.map { (peer, $0) } }[0]
        driver.clear()
        driver.delivered([4], h3First)
        #expect(itemsByHost(driver, hosts) == ["h2": 0, "h3": 1])
        // h2 finishes one: it holds 2 against h3's 2, so it takes one again, and no more.
        driver.delivered(h2Peer, h2First)
        #expect(itemsByHost(driver, hosts) == ["h2": 1, "h3": 1])
    }

    @Test func withoutSpreadProcessesTakeWhatTheirCreditAllows() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        let hosts: [PeerID: String] = [[1]: "h2", [2]: "h2", [3]: "h2", [4]: "h3"]
        for peer in hosts.keys.sorted(by: { $0[0] < $1[0] }) {
            driver.ready(peer, "a", Self.worker(credit: 2, node: "n\(peer[0])", host: hosts[peer]!))
        }
        for id in 0..<20 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        #expect(itemsByHost(driver, hosts) == ["h2": 6, "h3": 2])
    }

    @Test func spreadKeepsABatchWithinTheHostsShare() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, spread: true)])
        for id in 0..<10 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        driver.ready([1], "a", Self.worker(credit: 3, node: "n1", host: "small"))
        var big = Self.worker(credit: 8, node: "n2", host: "big")
        big["batch"] = "8"
        driver.ready([2], "a", big)
        #expect(driver.sentIDs(to: [1]).count == 3)
        #expect(driver.requests(to: [2]).map(\.items.count) == [3], "as many as the small host holds, in one batch, not 8")
    }

    @Test func theWorkerOfferingMoreLoadDiscountedSpeedGetsItemsFirst() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        let figures = { (speed: String, load: String) in ["speed": speed, "speed.unit": "MB/s", "load.1": load, "cores": "4"] }
        driver.ready([1], "a", Self.worker(credit: 4, node: "n1", host: "slow", extra: figures("100.0", "0.00")))
        driver.ready([2], "a", Self.worker(credit: 4, node: "n2", host: "fast", extra: figures("400.0", "0.00")))
        driver.feed(.accepted(id: 1, payload: [1]))
        #expect(driver.sentIDs(to: [2]) == [1])
        // The fast host gets busy with other work: 400 / (1 + 28/4) = 50 < 100 x 4/4.
        driver.feed(.worker(peer: [2], message: .refresh(capabilities: Capabilities(["load.1": "28.00"]))))
        driver.feed(.accepted(id: 2, payload: [2]))
        #expect(driver.sentIDs(to: [1]) == [2])
    }

    @Test func anIdleSlowWorkerBeatsANearlyFullFastOne() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external)])
        let figures = { (speed: String) in ["speed": speed, "load.1": "0.00", "cores": "4"] }
        driver.ready([1], "a", Self.worker(credit: 4, node: "n1", host: "fast", extra: figures("100.0")))
        for id in 0..<3 { driver.feed(.accepted(id: UInt64(id), payload: [1])) }
        #expect(driver.sentIDs(to: [1]) == [0, 1, 2])
        driver.ready([2], "a", Self.worker(credit: 4, node: "n2", host: "slow", extra: figures("40.0")))
        // fast offers 100 x 1/4 = 25, slow 40 x 4/4.
        driver.feed(.accepted(id: 3, payload: [1]))
        #expect(driver.sentIDs(to: [2]) == [3])
    }

    @Test func aWorkerWithoutTheRequiredGPUModelIsRefusedWithTheReason() {
        let driver = CoreDriver([StageSpec(name: "a", handler: .external, requires: Requirements(gpuModel: "RTX 4090"))])
        driver.ready([1], "a", Self.worker(credit: 1, node: "n1", host: "h", extra: ["gpu": "true", "gpu.count": "1", "gpu.0.model": "Tesla T4"]))
        #expect(driver.actions.contains {
            if case .protocolError([1], .unknownStage, let detail) = $0 {
                detail == "worker cannot serve stage a: needs a GPU whose model contains \"RTX 4090\", worker has Tesla T4"
            } else { false }
        })
        #expect(driver.disconnects([1]) == 1)
        driver.ready([2], "a", Self.worker(credit: 1, node: "n2", host: "g", extra: ["gpu": "true", "gpu.count": "1", "gpu.0.model": "NVIDIA GeForce RTX 4090"]))
        driver.feed(.accepted(id: 5, payload: [1]))
        #expect(driver.sentIDs(to: [2]) == [5])
    }
}
