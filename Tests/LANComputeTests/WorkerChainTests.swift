// A worker with chains announced: it registers each chain once, under its head, and runs every member in one handler.

import Foundation
import Logging
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct WorkerChainTests {
    let session = WorkerSessionCoreTests()

    func threeStages(middleChains: Bool = true) -> Topology {
        var topology = session.topology([
            StageSpec(name: "a", handler: .builtin(name: "upper", options: [:])),
            StageSpec(name: "b", handler: .builtin(name: "split-words", options: [:]), from: ["a"], chain: middleChains),
            StageSpec(name: "c", handler: .builtin(name: "lower", options: [:]), from: ["b"]),
        ])
        topology.chains = ChainPlan(topology).chains
        return topology
    }

    func plans(_ topology: Topology, only: Set<String>? = nil, unavailable: Set<String> = []) throws -> [StagePlan] {
        var configuration = WorkerConfiguration(brokerEndpoint: session.broker, nodeID: "node-1", stopGrace: .zero)
        configuration.stages = only
        var core = WorkerSessionCore(configuration: configuration) { spec in
            unavailable.contains(spec.name) ? .unavailable(reason: "not here") : .available
        }
        _ = core.handle(.start, at: session.at(0))
        let opened = core.handle(try session.answer(topology), at: session.at(0))
        return opened.compactMap { if case .openSession(let plans, _) = $0 { plans } else { nil } }.first ?? []
    }

    @Test func aChainRegistersOnceUnderItsHeadAndAnnouncesItsMembers() throws {
        let plans = try plans(threeStages())
        #expect(plans.map(\.spec.name) == ["a"])
        #expect(plans.first?.chain.map(\.name) == ["a", "b", "c"])
        #expect(plans.first?.capabilities["chain"] == "a,b,c")
        #expect(plans.first?.isFinal == true, "the chain ends at a final stage: its outputs go to the aggregator")
        #expect(plans.first?.runsInline == true, "every member is a fast builtin")
    }

    @Test func withoutAnnouncedChainsEveryStageIsServedAlone() throws {
        var topology = threeStages()
        topology.chains = nil
        #expect(try plans(topology).map(\.spec.name) == ["a", "b", "c"])
        #expect(try plans(threeStages(middleChains: false)).map(\.spec.name) == ["a", "b", "c"])
    }

    @Test func stagesNamingAMemberSelectsTheChainAndAnUnavailableMemberDropsIt() throws {
        #expect(try plans(threeStages(), only: ["c"]).map(\.spec.name) == ["a"])
        #expect(try plans(threeStages(), unavailable: ["b"]).isEmpty)
    }

    @Test func theChainHandlerRunsEveryMemberAndNamesTheOneThatFails() throws {
        let topology = threeStages()
        let plan = try #require(try plans(topology).first)
        let made = SlotWork.makeHandler(for: plan, configuration: WorkerConfiguration(brokerEndpoint: session.broker, nodeID: "n"),
                                        logger: .init(label: "test"))
        let handler = try #require(made.handler)
        defer { handler.close() }
        let job = SlotJob(stage: 0, item: RequestBatch.Item(ItemHeader(id: 5, epoch: 2, attempt: 1), Array("Hello World".utf8)))
        let outcome = SlotWork.outcome(of: job, handler: handler, setupFailure: nil)
        #expect(outcome == ItemOutcome(id: 5, epoch: 2, attempt: 1, status: .completed(outputs: [Array("hello".utf8), Array("world".utf8)])))

        var failing = topology
        failing.stages[1].handler = .builtin(name: "fail", options: ["message": "no"])
        failing.chains = ChainPlan(failing).chains
        let failingPlan = try #require(try plans(failing).first)
        let broken = try #require(SlotWork.makeHandler(for: failingPlan, configuration: WorkerConfiguration(brokerEndpoint: session.broker, nodeID: "n"),
                                                       logger: .init(label: "test")).handler)
        defer { broken.close() }
        #expect(SlotWork.outcome(of: job, handler: broken, setupFailure: nil).status == .failedAt(stage: "b", message: "no", stderr: ""))
    }

    /// A member that maps each payload with `transform`: its outputs, or a failure for "boom".
    final class Member: StageHandler {
        let transform: ([UInt8]) -> [[UInt8]]
        var seen: [[UInt8]] = []
        /// The id, attempt and key of every item it was given.
        var metadata: [(UInt64?, Int?, [UInt8])] = []
        init(_ transform: @escaping ([UInt8]) -> [[UInt8]]) { self.transform = transform }
        func process(_ item: StageItem) throws(StageFailure) -> [[UInt8]] {
            seen.append(item.payload)
            metadata.append((item.id, item.attempt, item.key))
            if item.payload == Array("boom".utf8) { throw StageFailure("exploded") }
            return transform(item.payload)
        }
        func close() {}
    }

    @Test func aChainHandsOnOneOutputSeveralOrNoneWithTheItemsMetadata() throws {
        let twice = Member { [$0, $0 + Array("!".utf8)] }
        let upper = Member { [Array(String(decoding: $0, as: UTF8.self).uppercased().utf8)] }
        let dropShort = Member { $0.count > 2 ? [$0] : [] }
        let chain = ChainHandler(members: [("upper", upper), ("twice", twice), ("drop", dropShort)])
        let item = StageItem(payload: Array("ab".utf8), id: 9, attempt: 2, key: Array("k".utf8))
        // upper: one output handed on; twice: two, each an item of `drop`, which keeps only the longer.
        #expect(try chain.process(item) == [Array("AB!".utf8)])
        #expect(twice.seen == [Array("AB".utf8)])
        #expect(dropShort.seen == [Array("AB".utf8), Array("AB!".utf8)])
        // Every member, on either path, sees the item's own id, attempt and key.
        for member in [upper, twice, dropShort] {
            #expect(member.metadata.allSatisfy { $0.0 == 9 && $0.1 == 2 && $0.2 == Array("k".utf8) })
        }
        #expect(dropShort.metadata.count == 2)

        // A member with no outputs ends the chain there: the members after it see nothing.
        let none = Member { _ in [] }
        let after = Member { [$0] }
        #expect(try ChainHandler(members: [("none", none), ("after", after)]).process(item) == [])
        #expect(after.seen.isEmpty)

        // A failure after a fan-out names the member, as it does on the one-output path.
        let fan = Member { [$0, Array("boom".utf8)] }
        let failing = ChainHandler(members: [("fan", fan), ("burst", Member { [$0] })])
        #expect(throws: StageFailure("exploded", stage: "burst")) { try failing.process(item) }
        #expect(throws: StageFailure("exploded", stage: "first")) {
            try ChainHandler(members: [("first", Member { [$0] })]).process(StageItem(payload: Array("boom".utf8)))
        }
    }

    @Test func aChainFailureTravelsInAVersion3ReplyAndEverythingElseInVersion2() throws {
        let chained = ReplyBatch(outcomes: [ItemOutcome(id: 1, epoch: 2, attempt: 3, status: .failedAt(stage: "b", message: "m", stderr: "e"))])
        #expect(chained.frames.first?.first == ReplyBatch.chainVersion)
        #expect(chained.frames.count == 4)
        #expect(try ReplyBatch(frames: chained.frames) == chained)
        let plain = ReplyBatch(outcomes: [ItemOutcome(id: 1, epoch: 2, attempt: 3, status: .failed(message: "m", stderr: "e"))])
        #expect(plain.frames.first?.first == ReplyBatch.version)
        var forged = chained.frames
        forged[0][0] = ReplyBatch.version
        #expect(throws: WireError.self) { try ReplyBatch(frames: forged) }
    }
}
