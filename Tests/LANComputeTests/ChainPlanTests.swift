// Which stages chain, decided from the topology alone; and how `chain:` is read and refused.

import Foundation
import Testing
@testable import LANCompute

@Suite struct ChainPlanTests {
    static func plan(_ yaml: String) throws -> ChainPlan {
        ChainPlan(try TopologyLoaderTests.load(yaml))
    }

    static func pipeline(_ stages: String) -> String {
        """
        version: 1
        name: chains
        source: {stdin: true}
        stages:
        \(stages)
        sink: {stdout: true}
        """
    }

    @Test func aLinearRunOfBuiltinsIsOneChain() throws {
        let plan = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper}
              - {name: c, builtin: lower}
            """))
        #expect(plan.chains == [["a", "b", "c"]])
        #expect(plan.boundaries.isEmpty)
        #expect(plan.chain(containing: "b") == ["a", "b", "c"])
    }

    @Test func chainFalseKeepsAStageApart() throws {
        let middle = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper, chain: false}
              - {name: c, builtin: lower}
            """))
        #expect(middle.chains.isEmpty)
        #expect(middle.boundaries.map(\.reason) == [.optedOut(stage: "b"), .optedOut(stage: "b")])
        let last = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper}
              - {name: c, builtin: lower, chain: false}
            """))
        #expect(last.chains == [["a", "b"]])
        #expect(last.boundaries.map(\.downstream) == ["c"])
    }

    @Test func fanOutAndFanInAreBoundaries() throws {
        let plan = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper, from: a}
              - {name: c, builtin: lower, from: a}
              - {name: d, builtin: identity, from: [b, c]}
              - {name: e, builtin: identity, from: d}
            """))
        #expect(plan.chains == [["d", "e"]])
        let reasons = Dictionary(uniqueKeysWithValues: plan.boundaries.map { ("\($0.upstream)>\($0.downstream)", $0.reason) })
        #expect(reasons["a>b"] == .fanOut(stage: "a"))
        #expect(reasons["b>d"] == .fanIn(stage: "d"))
        #expect(reasons["c>d"] == .fanIn(stage: "d"))
    }

    @Test func groupByAndDeadlineStopAChainButMayHeadOne() throws {
        let plan = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity, group-by: item, deadline: 5s}
              - {name: b, builtin: upper}
              - {name: c, builtin: lower, group-by: item}
              - {name: d, builtin: identity}
              - {name: e, builtin: identity, deadline: 1s}
            """))
        #expect(plan.chains == [["a", "b"], ["c", "d"]])
        #expect(plan.boundaries.map(\.reason) == [.groupBy(stage: "c"), .deadline(stage: "e")])
    }

    @Test func placementCostReplicasCreditAndTimeoutMustAgree() throws {
        let plan = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper, requires: {os: linux}}
              - {name: c, builtin: sleep, options: {duration: 1ms}, requires: {os: linux}}
              - {name: d, builtin: sleep, options: {duration: 1ms}, requires: {os: linux}, replicas: 2}
              - {name: e, builtin: sleep, options: {duration: 1ms}, requires: {os: linux}, replicas: 2, credit: 9}
              - {name: f, builtin: sleep, options: {duration: 1ms}, requires: {os: linux}, replicas: 2, credit: 9, timeout: 1s}
              - {name: g, builtin: sleep, options: {duration: 1ms}, requires: {os: linux}, replicas: 2, credit: 9, timeout: 2s}
            """))
        #expect(plan.boundaries.map(\.reason) == [.placement, .cost, .replicas, .credit, .timeout])
        #expect(plan.chains == [["f", "g"]])
    }

    @Test func externalStagesNeverChain() throws {
        let plan = try Self.plan(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b}
            """))
        #expect(plan.chains.isEmpty)
        #expect(plan.boundaries.map(\.reason) == [.external(stage: "b")])
    }

    @Test func aChainValueThatIsNotABooleanIsRefusedWithItsPlace() {
        let diagnostics = TopologyLoaderTests.diagnostics(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper, chain: maybe}
            """))
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.code == TopologyErrorCode.wrongType.rawValue)
        #expect(diagnostics.first?.location.line == 6)
        #expect(diagnostics.first?.message.contains("chain") == true)
        #expect(diagnostics.first?.message.contains("true or false") == true)
    }

    @Test func theJournalTellsAChainedRunFromAnUnchainedOne() throws {
        let chained = try TopologyLoaderTests.load(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper}
            """))
        var unchained = chained
        unchained.stages[1].chain = false
        #expect(BrokerJournal.topologyHash(chained) != BrokerJournal.topologyHash(unchained))
    }

    @Test func chainFalseSurvivesJSONAndYAMLRoundTrips() throws {
        let topology = try TopologyLoaderTests.load(Self.pipeline("""
              - {name: a, builtin: identity}
              - {name: b, builtin: upper, chain: false}
            """))
        #expect(topology.stages.map(\.chain) == [true, false])
        let json = try JSONEncoder().encode(topology)
        #expect(try JSONDecoder().decode(Topology.self, from: json).stages.map(\.chain) == [true, false])
        let yaml = TopologyEncoder.yaml(for: topology)
        #expect(try TopologyLoaderTests.load(yaml).stages.map(\.chain) == [true, false])
    }
}
