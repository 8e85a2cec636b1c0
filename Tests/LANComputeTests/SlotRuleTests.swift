// Slots per stage when `replicas` is left out: the rule, the worker's plan, and what travels to workers and the journal.

import Foundation
import Testing
@testable import LANCompute

@Suite struct SlotRuleTests {
    static let exec = HandlerSpec.exec(ExecSpec(command: ["python3", "score.py"]))
    static let perItem = HandlerSpec.exec(ExecSpec(command: ["./thumb.sh"], mode: .perItem))
    static let sleep = HandlerSpec.builtin(name: "sleep", options: ["duration": "1ms"])

    func configuration(cores: Int, slots: Int? = nil) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(brokerEndpoint: "tcp://head:5555", slots: slots, nodeID: "node-1")
        configuration.cores = cores
        return configuration
    }

    @Test func execStagesWithoutReplicasTakeOneSlotPerCore() {
        #expect(StageSpec(name: "s", handler: Self.exec).slotRule == .perCore)
        #expect(StageSpec(name: "p", handler: Self.perItem).slotRule == .perCore)
        #expect(StageSpec(name: "b", handler: Self.sleep).slotRule == .fixed(1))
        #expect(StageSpec(name: "x", handler: .external).slotRule == .fixed(1))
        #expect(StageSpec(name: "s", handler: Self.exec, replicas: 1).slotRule == .fixed(1))
    }

    @Test func theWorkersPlanFillsItsCores() {
        let six = configuration(cores: 6)
        let stream = WorkerSessionCore.plan(for: StageSpec(name: "s", handler: Self.exec), isFinal: false, configuration: six)
        #expect(stream.slots == 6 && stream.credit == 24 && stream.batch == 6)
        let perItem = WorkerSessionCore.plan(for: StageSpec(name: "p", handler: Self.perItem), isFinal: true, configuration: six)
        #expect(perItem.slots == 6)
        #expect(WorkerSessionCore.plan(for: StageSpec(name: "b", handler: Self.sleep), isFinal: false, configuration: six).slots == 1)
        #expect(WorkerSessionCore.plan(for: StageSpec(name: "s", handler: Self.exec, replicas: 1), isFinal: false, configuration: six).slots == 1)
        #expect(WorkerSessionCore.plan(for: StageSpec(name: "s", handler: Self.exec, replicas: 3), isFinal: false, configuration: six).slots == 3)
    }

    @Test func slotsOnTheWorkerComeBeforeReplicas() {
        let two = configuration(cores: 6, slots: 2)
        #expect(WorkerSessionCore.plan(for: StageSpec(name: "s", handler: Self.exec), isFinal: false, configuration: two).slots == 2)
        #expect(WorkerSessionCore.plan(for: StageSpec(name: "s", handler: Self.exec, replicas: 5), isFinal: false, configuration: two).slots == 2)
    }

    @Test func aChainWithAnExecMemberTakesOneSlotPerCore() {
        let members = [StageSpec(name: "a", handler: Self.sleep), StageSpec(name: "b", handler: Self.exec, from: ["a"])]
        let plan = WorkerSessionCore.plan(for: members[0], isFinal: true, configuration: configuration(cores: 4), chain: members)
        #expect(plan.slots == 4)
    }

    @Test func aStageWithoutReplicasReachesAnEarlierWorkerAsOneSlot() throws {
        let json = try JSONEncoder().encode(StageSpec(name: "s", handler: Self.exec))
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        // An earlier worker decodes `replicas` as a required integer and ignores keys it does not know.
        #expect(object["replicas"] as? Int == 1)
        #expect(object["replicasByWorker"] as? Bool == true)
        #expect(try JSONDecoder().decode(StageSpec.self, from: json).replicas == nil)
        let written = try JSONEncoder().encode(StageSpec(name: "s", handler: Self.exec, replicas: 1))
        #expect(try JSONDecoder().decode(StageSpec.self, from: written).replicas == 1)
    }

    @Test func theJournalHashOfAFileWithoutReplicasIsTheOneItHadWhenReplicasDefaultedToOne() throws {
        let stage = StageSpec(name: "s", handler: Self.exec)
        let topology = Topology(name: "t", source: SourceSpec(kind: .stdin), stages: [stage], sink: SinkSpec(kind: .stdout))
        var defaulted = topology
        defaulted.stages[0].replicas = 1
        // Before `replicas` was optional, a stage without it was encoded exactly as `replicas: 1` is now.
        #expect(BrokerJournal.topologyHash(topology) == BrokerJournal.topologyHash(defaulted))
        var four = topology
        four.stages[0].replicas = 4
        #expect(BrokerJournal.topologyHash(topology) != BrokerJournal.topologyHash(four))
    }

    @Test func neighboursChainOnlyWhenTheirReplicasAreWrittenAlike() {
        #expect(ChainPlan.boundary(StageSpec(name: "a", handler: Self.exec), StageSpec(name: "b", handler: Self.exec, from: ["a"]), upstreamConsumers: 1) == nil)
        #expect(ChainPlan.boundary(StageSpec(name: "a", handler: Self.exec), StageSpec(name: "b", handler: Self.exec, from: ["a"], replicas: 1), upstreamConsumers: 1) == .replicas)
    }
}
