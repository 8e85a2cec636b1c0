// The worker's session core under the owner policy: it tells the broker, hands back unstarted items, and resumes.

import Foundation
import Testing
@testable import LANCompute

extension WorkerSessionCoreTests {
    /// A core with the owner policy (threshold 1 core), serving one stage of a broker that knows the policy or not.
    func yieldingCore(brokerKnowsPolicy: Bool = true) throws -> WorkerSessionCore {
        var configuration = WorkerConfiguration(brokerEndpoint: broker, nodeID: "node-1")
        configuration.ownerThreshold = 1
        var core = WorkerSessionCore(configuration: configuration) { _ in .available }
        var served = topology([StageSpec(name: "a", handler: .external)])
        served.ownerPolicy = brokerKnowsPolicy ? true : nil
        _ = core.handle(.start, at: at(0))
        _ = core.handle(try answer(served), at: at(0))
        _ = core.handle(.sessionOpened, at: at(0))
        return core
    }

    /// Feeds one load measurement a second from `from` (seconds) on, and returns every action.
    func measure(_ core: inout WorkerSessionCore, load: Double, seconds: ClosedRange<Int>) -> [WorkerAction] {
        seconds.flatMap { core.handle(.ownerLoad(load), at: at($0 * 1000)) }
    }

    func ownerRefreshes(_ actions: [WorkerAction]) -> [Capabilities] {
        sends(actions).compactMap { if case .refresh(let capabilities) = $0.message { capabilities } else { nil } }
    }

    @Test func aBusyMachineMakesTheWorkerRefreshAsYieldingAndTakeBackUnstartedJobs() throws {
        var core = try yieldingCore()
        let run = core.handle(.brokerMessage(stage: 0, request([1, 2, 3])), at: at(100))
        let jobs = run.compactMap { if case .runJobs(0, let jobs) = $0 { jobs } else { nil } }.flatMap { $0 }
        #expect(jobs.count == 3)
        #expect(ownerRefreshes(measure(&core, load: 1.9, seconds: 1...3)).isEmpty, "not yet: the load must last")
        let yielded = core.handle(.ownerLoad(1.9), at: at(4000))
        #expect(yielded.contains(.notice(.yielding(load: 1.9, threshold: 1))))
        #expect(ownerRefreshes(yielded).map { $0["yielding"] } == ["true"])
        #expect(ownerRefreshes(yielded).first?["owner.load"] == "1.90")
        #expect(yielded.contains(.withdrawJobs(stage: 0)))
        // Item 1 runs in a slot; 2 and 3 waited: they go back, unstarted, without an attempt.
        let handedBack = try replies(core.handle(.jobsWithdrawn(stage: 0, Array(jobs.dropFirst())), at: at(4001)))
        #expect(handedBack.first?.batch.outcomes == [
            ItemOutcome(id: 2, attempt: 1, status: .returned), ItemOutcome(id: 3, attempt: 1, status: .returned),
        ])
        // The running one is finished and answered as usual (a final stage: once its outputs left).
        let finished = core.handle(.slotResults(stage: 0, completed([1])), at: at(4100))
        #expect(finished.contains(.pushToAggregator(ReplyBatch(outcomes: completed([1])))))
        let answered = try replies(core.handle(.aggregatorAccepted, at: at(4150)))
        #expect(answered.first?.batch.outcomes == [ItemOutcome(id: 1, attempt: 1, status: .deliveredToAggregator(count: 1))])
        // Something the broker sent before it heard: straight back, not run.
        let late = core.handle(.brokerMessage(stage: 0, request([4])), at: at(4200))
        #expect(!late.contains { if case .runJobs = $0 { true } else { false } })
        #expect(try replies(late).first?.batch.outcomes == [ItemOutcome(id: 4, attempt: 1, status: .returned)])
    }

    @Test func theWorkerResumesOnceTheMachineStaysQuiet() throws {
        var core = try yieldingCore()
        _ = measure(&core, load: 1.9, seconds: 1...4)
        #expect(ownerRefreshes(measure(&core, load: 0.2, seconds: 5...14)).isEmpty)
        let resumed = core.handle(.ownerLoad(0.2), at: at(15000))
        #expect(resumed.contains(.notice(.resumed(load: 0.2, threshold: 1))))
        #expect(ownerRefreshes(resumed).map { $0["yielding"] } == ["false"])
        let run = core.handle(.brokerMessage(stage: 0, request([9])), at: at(15100))
        #expect(run.contains { if case .runJobs(0, let jobs) = $0 { jobs.map(\.item.header.id) == [9] } else { false } })
    }

    @Test func aWorkerThatYieldsWhenItRegistersSaysSoInItsReady() throws {
        var configuration = WorkerConfiguration(brokerEndpoint: broker, nodeID: "node-1")
        configuration.ownerThreshold = 1
        var core = WorkerSessionCore(configuration: configuration) { _ in .available }
        _ = core.handle(.start, at: at(0))
        _ = measure(&core, load: 1.9, seconds: 1...4)
        var served = topology([StageSpec(name: "a", handler: .external)])
        served.ownerPolicy = true
        _ = core.handle(try answer(served), at: at(4100))
        let opened = core.handle(.sessionOpened, at: at(4100))
        let ready = sends(opened).compactMap { if case .ready(_, let capabilities) = $0.message { capabilities } else { nil } }
        #expect(ready.map { $0["yielding"] } == ["true"])
    }

    @Test func aBrokerThatDoesNotKnowThePolicyIsNotSentRefreshes() throws {
        var core = try yieldingCore(brokerKnowsPolicy: false)
        let actions = measure(&core, load: 1.9, seconds: 1...4)
        #expect(actions.contains(.notice(.ownerPolicyUnsupported(broker: broker))))
        #expect(ownerRefreshes(actions).isEmpty && !actions.contains(.withdrawJobs(stage: 0)))
    }
}
