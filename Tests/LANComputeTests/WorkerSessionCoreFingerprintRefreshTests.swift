// The worker's session core refreshing the machine's load, memory and GPU use: once per node, only what moved enough, only to a broker that reads it.

import Foundation
import Testing
@testable import LANCompute

extension WorkerSessionCoreTests {
    /// What the machine reads as when the session registers: its READY carries these.
    static let baseline = [
        "load.1": "0.50", "load.5": "0.40", "load.15": "0.30", "memory.available": "4000000000",
        "gpu.0.memory.used": "268435456", "gpu.0.utilization": "3",
    ]

    /// A core serving two stages (external handlers, fixed credit) of a broker that announces
    /// `ownerPolicy` or not, registered after reading ``baseline``.
    func refreshingCore(brokerReadsRefreshes: Bool = true) throws -> (core: WorkerSessionCore, ready: Capabilities) {
        var core = WorkerSessionCore(configuration: WorkerConfiguration(brokerEndpoint: broker, nodeID: "node-1")) { _ in .available }
        var served = topology([
            StageSpec(name: "a", handler: .external, credit: 4), StageSpec(name: "b", handler: .external, from: ["a"], credit: 4),
        ])
        served.ownerPolicy = brokerReadsRefreshes ? true : nil
        _ = core.handle(.start, at: at(0))
        _ = core.handle(.fingerprintRead(Self.baseline), at: at(0))
        _ = core.handle(try answer(served), at: at(0))
        let opened = core.handle(.sessionOpened, at: at(0))
        let ready = try #require(sends(opened).compactMap { if case .ready(_, let capabilities) = $0.message { capabilities } else { nil } }.first)
        return (core, ready)
    }

    func fingerprintRefreshes(_ actions: [WorkerAction]) -> [(stage: Int, capabilities: Capabilities)] {
        sends(actions).compactMap { if case .refresh(let capabilities) = $0.message { ($0.stage, capabilities) } else { nil } }
    }

    /// ``baseline`` with `changes` applied.
    func reading(_ changes: [String: String]) -> WorkerInput {
        .fingerprintRead(Self.baseline.merging(changes) { $1 })
    }

    @Test func aChangedLoadIsRefreshedOnceForTheNodeWithOnlyDynamicKeys() throws {
        var (core, ready) = try refreshingCore()
        #expect(ready["load.1"] == "0.50" && ready["gpu.0.utilization"] == "3", "READY carries the latest reading")
        let sent = fingerprintRefreshes(core.handle(reading(["load.1": "1.75"]), at: at(5000)))
        #expect(sent.count == 1, "one refresh for the node, not one per stage: \(sent)")
        let refresh = try #require(sent.first)
        #expect(refresh.stage == 0)
        #expect(refresh.capabilities.values == Self.baseline.merging(["load.1": "1.75"]) { $1 })
        #expect(refresh.capabilities.values.keys.allSatisfy(Fingerprint.isDynamicCapability))
        #expect(refresh.capabilities.encodedCount <= NodeInfo.capabilitiesLimit)
        // The broker has that figure now: the same reading again says nothing.
        #expect(fingerprintRefreshes(core.handle(reading(["load.1": "1.75"]), at: at(10000))).isEmpty)
    }

    @Test func anUnchangedOrBarelyChangedReadingSendsNothing() throws {
        var (core, ready) = try refreshingCore()
        #expect(fingerprintRefreshes(core.handle(reading([:]), at: at(5000))).isEmpty)
        let total = try #require(Double(ready["memory"] ?? ""))
        // Under 0.1 of load and under 1 % of the memory, load.5 any amount: not worth a message.
        let small = reading([
            "load.1": "0.59", "load.5": "3.00", "memory.available": String(Int(4_000_000_000 + total * 0.004)),
        ])
        #expect(fingerprintRefreshes(core.handle(small, at: at(10000))).isEmpty)
        // A figure that could not be read this time keeps its value at the broker.
        var partial = Self.baseline
        partial["gpu.0.utilization"] = nil
        #expect(fingerprintRefreshes(core.handle(.fingerprintRead(partial), at: at(12000))).isEmpty)
        // 1 % of the memory is worth one.
        let more = reading(["memory.available": String(Int(4_000_000_000 - total * 0.011))])
        #expect(fingerprintRefreshes(core.handle(more, at: at(15000))).count == 1)
    }

    @Test func anyGPUFigureChangeIsRefreshed() throws {
        var (core, _) = try refreshingCore()
        let sent = fingerprintRefreshes(core.handle(reading(["gpu.0.utilization": "4"]), at: at(5000)))
        #expect(sent.map { $0.capabilities["gpu.0.utilization"] } == ["4"])
        let used = fingerprintRefreshes(core.handle(reading(["gpu.0.utilization": "4", "gpu.0.memory.used": "268435457"]), at: at(10000)))
        #expect(used.map { $0.capabilities["gpu.0.memory.used"] } == ["268435457"])
    }

    @Test func aBrokerWithoutOwnerPolicyGetsNoRefresh() throws {
        var (core, _) = try refreshingCore(brokerReadsRefreshes: false)
        let actions = core.handle(reading(["load.1": "99.00", "gpu.0.utilization": "100"]), at: at(400))
        #expect(fingerprintRefreshes(actions).isEmpty, "\(actions)")
        // Its heartbeats keep the three frames of RFC 7.
        let tick = core.handle(.tick, at: at(500))
        #expect(!sends(tick).isEmpty && sends(tick).allSatisfy { if case .heartbeat = $0.message { true } else { false } })
    }

    @Test func onlyDynamicValuesOfAReadingReachTheReady() throws {
        var core = WorkerSessionCore(configuration: WorkerConfiguration(brokerEndpoint: broker, nodeID: "node-1")) { _ in .available }
        var served = topology([StageSpec(name: "a", handler: .external, credit: 4)])
        served.ownerPolicy = true
        _ = core.handle(.start, at: at(0))
        _ = core.handle(.fingerprintRead(["load.1": "7.25", "credit": "999", "arch": "sparc"]), at: at(1))
        _ = core.handle(try answer(served), at: at(2))
        let opened = core.handle(.sessionOpened, at: at(3))
        let ready = try #require(sends(opened).compactMap { if case .ready(_, let capabilities) = $0.message { capabilities } else { nil } }.first)
        #expect(ready["load.1"] == "7.25")
        #expect(ready["credit"] == "4" && ready["arch"] != "sparc", "only dynamic values are taken from a reading")
    }
}
