// The worker's session core without sockets: registration, heartbeats, reconnects, replies and draining, by its actions.

import Foundation
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct WorkerSessionCoreTests {
    let start = ContinuousClock.now
    let broker = "tcp://head:5555"

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    func topology(_ stages: [StageSpec]) -> Topology {
        var topology = Topology(name: "t", source: SourceSpec(kind: .stdin), stages: stages, sink: SinkSpec(kind: .stdout))
        topology.broker.heartbeatInterval = .milliseconds(500)
        topology.broker.heartbeatLiveness = 3
        topology.broker.aggregator = "tcp://0.0.0.0:5557"
        return topology
    }

    func answer(_ topology: Topology) throws -> WorkerInput {
        let json = try JSONEncoder().encode(topology)
        return .topologyReply(ClientMessage(service: "mmi.topology", body: [Array("200".utf8), Array(json)]).frames)
    }

    func core(grace: Duration = .zero, unavailable: Set<String> = []) -> WorkerSessionCore {
        var configuration = WorkerConfiguration(brokerEndpoint: broker, nodeID: "node-1", stopGrace: grace)
        configuration.swiftFunctions = [:]
        return WorkerSessionCore(configuration: configuration) { spec in
            unavailable.contains(spec.name) ? .unavailable(reason: "not here") : .available
        }
    }

    /// A core serving `topology` since `at(0)`, and the actions that got it there.
    func serving(_ topology: Topology, grace: Duration = .zero) throws -> (WorkerSessionCore, [WorkerAction]) {
        var core = core(grace: grace)
        var actions = core.handle(.start, at: at(0))
        actions += core.handle(try answer(topology), at: at(0))
        actions += core.handle(.sessionOpened, at: at(0))
        return (core, actions)
    }

    func sends(_ actions: [WorkerAction]) -> [(stage: Int, message: WorkerMessage)] {
        actions.compactMap { if case .send(let stage, let message) = $0 { (stage, message) } else { nil } }
    }

    func replies(_ actions: [WorkerAction]) throws -> [(stage: Int, batch: ReplyBatch)] {
        try sends(actions).compactMap { sent in
            guard case .reply(_, let body) = sent.message else { return nil }
            return (sent.stage, try ReplyBatch(frames: body))
        }
    }

    func request(_ ids: [UInt64], client: [UInt8] = []) -> WorkerMessage {
        .request(client: client, body: RequestBatch(items: ids.map { RequestBatch.Item(ItemHeader(id: $0, attempt: 1), Array("item \($0)".utf8)) }).frames)
    }

    func completed(_ ids: [UInt64]) -> [ItemOutcome] {
        ids.map { ItemOutcome(id: $0, attempt: 1, status: .completed(outputs: [Array("out \($0)".utf8)])) }
    }

    func isFinish(_ action: WorkerAction) -> Bool { action == .finish }

    /// The broker's `200` to `mmi.unserved`.
    var reportAcknowledged: WorkerInput {
        .topologyReply(ClientMessage(service: UnservedReport.service, body: [Array("200".utf8)]).frames)
    }

    // MARK: Registration

    @Test func registersEveryServableStageWithReadyAndCapabilities() throws {
        var core = core(unavailable: ["missing"])
        #expect(core.handle(.start, at: at(0)).contains(.requestTopology))
        let answered = core.handle(try answer(topology([
            StageSpec(name: "first", handler: .builtin(name: "upper", options: [:])),
            StageSpec(name: "missing", handler: .external, from: ["first"]),
            StageSpec(name: "gpu", handler: .external, from: ["first"], requires: Requirements(labels: ["gpu": "yes"])),
            StageSpec(name: "last", handler: .external, from: ["first"], replicas: 3),
        ])), at: at(0))
        // The broker hears first which stages this worker skips, and why.
        let report = try #require(answered.compactMap { if case .reportUnserved(let node, let stages) = $0 { (node, stages) } else { nil } }.first)
        #expect(report.0 == "node-1" && report.1.map(\.stage) == ["missing", "gpu"])
        #expect(report.1.first?.reason == "not here")
        #expect(!answered.contains { if case .openSession = $0 { true } else { false } })
        let opened = answered + core.handle(reportAcknowledged, at: at(5))
        let plans = try #require(opened.compactMap { if case .openSession(let plans, _) = $0 { plans } else { nil } }.first)
        #expect(plans.map(\.spec.name) == ["first", "last"])
        #expect(plans.map(\.isFinal) == [false, true])
        #expect(plans[1].slots == 3 && plans[1].credit == 12 && !plans[1].runsInline)
        #expect(plans[0].runsInline)
        #expect(opened.contains(.openSession(plans, aggregator: "tcp://head:5557")))
        #expect(opened.contains(.notice(.notServing(stage: "missing", reason: "not here"))))
        #expect(opened.contains { if case .notice(.notServing(stage: "gpu", _)) = $0 { true } else { false } })
        #expect(sends(opened).isEmpty, "READY goes only once the sockets are open")

        let ready = sends(core.handle(.sessionOpened, at: at(0)))
        #expect(ready.count == 2)
        #expect(ready[0].stage == 0 && ready[0].message == .ready(service: "first", capabilities: plans[0].capabilities))
        #expect(ready[1].stage == 1 && ready[1].message == .ready(service: "last", capabilities: plans[1].capabilities))
        #expect(plans[1].capabilities["credit"] == "12" && plans[1].capabilities["node"] == "node-1")
    }

    @Test func aWorkerThatCanServeNothingWaitsAndAsksAgain() throws {
        var core = core(unavailable: ["a"])
        _ = core.handle(.start, at: at(0))
        let reported = core.handle(try answer(topology([StageSpec(name: "a", handler: .external)])), at: at(0))
        #expect(reported.contains(.reportUnserved(node: "node-1", [UnservedStage(stage: "a", reason: "not here")])))
        // An older broker does not answer the report: the worker goes on after a second.
        #expect(!core.handle(.tick, at: at(999)).contains(.notice(.servesNothing(pipeline: "t"))))
        let actions = core.handle(.tick, at: at(1000))
        #expect(actions.contains(.notice(.servesNothing(pipeline: "t"))))
        #expect(actions.contains(.reconnect(after: .milliseconds(100))))
        #expect(core.handle(.tick, at: at(1100)).contains(.requestTopology))
    }

    @Test func anErrorStatusFromTheBrokerBacksOff() {
        var core = core()
        _ = core.handle(.start, at: at(0))
        let reply = ClientMessage(service: "mmi.topology", body: [Array("501".utf8), []]).frames
        let actions = core.handle(.topologyReply(reply), at: at(10))
        #expect(actions.contains(.notice(.unexpectedTopologyReply(broker: broker, reason: "status 501"))))
        #expect(actions.contains(.reconnect(after: .milliseconds(100))))
    }

    // MARK: Heartbeats and reconnection

    @Test func heartbeatsEveryStageAtTheInterval() throws {
        // A fixed credit: no probes (see adaptiveCredit... below), only heartbeats.
        var (core, actions) = try serving(topology([
            StageSpec(name: "a", handler: .external, credit: 4), StageSpec(name: "b", handler: .external, from: ["a"], credit: 4),
        ]))
        #expect(actions.contains(.scheduleTick(at: at(500))))
        #expect(sends(core.handle(.tick, at: at(250))).isEmpty)
        let beats = sends(core.handle(.tick, at: at(500)))
        #expect(beats.map(\.stage) == [0, 1])
        #expect(beats.allSatisfy { $0.message == .heartbeat })
        // A reply counts as a sign of life: no heartbeat on that stage for another interval.
        _ = core.handle(.brokerMessage(stage: 0, .heartbeat), at: at(600))
        _ = core.handle(.brokerMessage(stage: 1, .heartbeat), at: at(600))
        _ = core.handle(.brokerMessage(stage: 0, request([1])), at: at(700))
        #expect(try replies(core.handle(.slotResults(stage: 0, completed([1])), at: at(800))).map(\.stage) == [0])
        #expect(sends(core.handle(.tick, at: at(1000))).map(\.stage) == [1])
    }

    @Test func aSilentBrokerIsLeftAndAskedAgainWithGrowingBackoff() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]))
        _ = core.handle(.tick, at: at(500))
        _ = core.handle(.tick, at: at(1000))
        #expect(!core.handle(.tick, at: at(1499)).contains { if case .reconnect = $0 { true } else { false } })
        let left = core.handle(.tick, at: at(1500))
        #expect(left.contains(.notice(.brokerSilent(expiry: .milliseconds(1500)))))
        #expect(left.contains(.reconnect(after: .milliseconds(100))))
        #expect(left.contains(.scheduleTick(at: at(1600))))
        #expect(core.handle(.tick, at: at(1600)).contains(.requestTopology))
        // No answer: each try waits twice as long, up to 1 s.
        let unanswered = core.handle(.tick, at: at(3600))
        #expect(unanswered.contains(.notice(.noAnswer(broker: broker))))
        #expect(unanswered.contains(.reconnect(after: .milliseconds(200))))
        #expect(core.handle(.tick, at: at(3800)).contains(.requestTopology))
        #expect(core.handle(.tick, at: at(5800)).contains(.reconnect(after: .milliseconds(400))))
        #expect(core.handle(.tick, at: at(6200)).contains(.requestTopology))
        #expect(core.handle(.tick, at: at(8200)).contains(.reconnect(after: .milliseconds(800))))
        #expect(core.handle(.tick, at: at(9000)).contains(.requestTopology))
        #expect(core.handle(.tick, at: at(11000)).contains(.reconnect(after: .seconds(1))))
        #expect(core.handle(.tick, at: at(12000)).contains(.requestTopology))
        #expect(core.handle(.tick, at: at(14000)).contains(.reconnect(after: .seconds(1))))
    }

    @Test func aBrokerDisconnectMakesTheWorkerRegisterAgain() throws {
        let pipeline = topology([StageSpec(name: "a", handler: .external)])
        var (core, _) = try serving(pipeline)
        let actions = core.handle(.brokerMessage(stage: 0, .disconnect), at: at(100))
        #expect(actions.contains(.notice(.brokerDisconnected(stage: "a"))))
        #expect(actions.contains(.reconnect(after: .milliseconds(100))))
        #expect(core.handle(.tick, at: at(200)).contains(.requestTopology))
        #expect(core.handle(try answer(pipeline), at: at(210)).contains { if case .openSession = $0 { true } else { false } })
        #expect(sends(core.handle(.sessionOpened, at: at(210))).map(\.message).first.map {
            if case .ready(service: "a", _) = $0 { true } else { false }
        } == true)
    }

    @Test func aFailedSocketCallBacksOff() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]))
        let actions = core.handle(.sessionFailed("boom"), at: at(10))
        #expect(actions.contains(.notice(.sessionFailed("boom"))))
        #expect(actions.contains(.reconnect(after: .milliseconds(100))))
    }

    // MARK: Items

    @Test func answersABatchInOneReply() throws {
        var (core, _) = try serving(topology([
            StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"]),
        ]))
        let run = core.handle(.brokerMessage(stage: 0, request([7, 8])), at: at(10))
        let jobs = run.compactMap { if case .runJobs(0, let jobs) = $0 { jobs } else { nil } }.flatMap { $0 }
        #expect(jobs.map(\.item.header.id) == [7, 8])
        #expect(jobs.map(\.item.payload) == [Array("item 7".utf8), Array("item 8".utf8)])
        let answered = try replies(core.handle(.slotResults(stage: 0, completed([7, 8])), at: at(20)))
        #expect(answered.map(\.stage) == [0])
        #expect(answered.first?.batch.outcomes == completed([7, 8]))
    }

    @Test func finalOutputsLeaveForTheAggregatorBeforeTheReplyThatAnnouncesThem() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]))
        _ = core.handle(.brokerMessage(stage: 0, request([1, 2])), at: at(10))
        let first = core.handle(.slotResults(stage: 0, completed([1, 2])), at: at(20))
        #expect(first.contains(.pushToAggregator(ReplyBatch(outcomes: completed([1, 2])))))
        #expect(try replies(first).isEmpty, "no REPLY before the outputs left")
        // Another result while the push waits: still no reply.
        _ = core.handle(.brokerMessage(stage: 0, request([3])), at: at(25))
        let second = core.handle(.slotResults(stage: 0, completed([3])), at: at(30))
        #expect(second.contains(.pushToAggregator(ReplyBatch(outcomes: completed([3])))))
        #expect(try replies(core.handle(.aggregatorAccepted, at: at(40))).isEmpty)
        let answered = try replies(core.handle(.aggregatorAccepted, at: at(50)))
        #expect(answered.first?.batch.outcomes.map(\.status) == Array(repeating: .deliveredToAggregator(count: 1), count: 3))
    }

    @Test func clientItemsAndFailuresOfAFinalStageAreAnsweredInTheReply() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]))
        _ = core.handle(.brokerMessage(stage: 0, request([1], client: MDP.clientItemsAddress)), at: at(10))
        _ = core.handle(.brokerMessage(stage: 0, request([2])), at: at(10))
        let failure = ItemOutcome(id: 2, attempt: 1, status: .failed(message: "no", stderr: ""))
        let actions = core.handle(.slotResults(stage: 0, completed([1]) + [failure]), at: at(20))
        #expect(!actions.contains { if case .pushToAggregator = $0 { true } else { false } })
        #expect(try replies(actions).first?.batch.outcomes == completed([1]) + [failure])
    }

    @Test func aMalformedRequestIsReportedAndNotRun() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]))
        let actions = core.handle(.brokerMessage(stage: 0, .request(client: [], body: [[9]])), at: at(10))
        #expect(actions.contains { if case .notice(.malformedRequest) = $0 { true } else { false } })
        #expect(!actions.contains { if case .runJobs = $0 { true } else { false } })
        // It still counts as word from the broker.
        #expect(!core.handle(.tick, at: at(1500)).contains { if case .reconnect = $0 { true } else { false } })
    }

    // MARK: Stopping

    @Test func stopWithoutGraceSendsDisconnectOnEveryStageAndFinishes() throws {
        var (core, _) = try serving(topology([
            StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"]),
        ]))
        _ = core.handle(.brokerMessage(stage: 0, request([1])), at: at(10))
        let actions = core.handle(.stopRequested(immediately: false), at: at(20))
        #expect(sends(actions).map(\.stage) == [0, 1])
        #expect(sends(actions).allSatisfy { $0.message == .disconnect })
        #expect(actions.contains(.notice(.handedBack(items: 1))))
        #expect(actions.last == .finish)
        #expect(core.handle(.tick, at: at(30)).isEmpty)
    }

    @Test func stopWhileAskingForTheTopologyFinishesAtOnce() {
        var core = core(grace: .seconds(10))
        _ = core.handle(.start, at: at(0))
        #expect(core.handle(.stopRequested(immediately: false), at: at(5)) == [.finish])
    }

    @Test func drainFinishesHeldItemsThenDisconnects() throws {
        var (core, _) = try serving(topology([
            StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"]),
        ]), grace: .seconds(10))
        _ = core.handle(.brokerMessage(stage: 0, request([1, 2])), at: at(10))
        let stopping = core.handle(.stopRequested(immediately: false), at: at(20))
        #expect(stopping.contains(.notice(.draining(items: 2, grace: .seconds(10)))))
        // The idle stage says goodbye at once; the busy one keeps its registration.
        #expect(sends(stopping).map(\.stage) == [1] && sends(stopping).first?.message == .disconnect)
        #expect(!stopping.contains(.finish))
        // Items that arrive now are not started: the DISCONNECT gives them back.
        #expect(!core.handle(.brokerMessage(stage: 0, request([3])), at: at(30)).contains { if case .runJobs = $0 { true } else { false } })
        // Heartbeats go on while draining.
        #expect(sends(core.handle(.tick, at: at(520))).map(\.message) == [.heartbeat])
        let half = core.handle(.slotResults(stage: 0, completed([1])), at: at(600))
        #expect(try replies(half).first?.batch.outcomes == completed([1]))
        #expect(!sends(half).contains { $0.message == .disconnect })
        let done = core.handle(.slotResults(stage: 0, completed([2])), at: at(700))
        let sent = sends(done)
        #expect(sent.count == 2)
        #expect(try replies(done).first?.batch.outcomes == completed([2]))
        #expect(sent.last?.stage == 0 && sent.last?.message == .disconnect, "the reply goes before the DISCONNECT")
        #expect(done.contains(.notice(.drained(finished: 2, handedBack: 1))))
        #expect(done.last == .finish)
    }

    @Test func aDrainedFinalStageWaitsAHeartbeatIntervalBeforeItsGoodbye() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]), grace: .seconds(10))
        _ = core.handle(.brokerMessage(stage: 0, request([1])), at: at(10))
        _ = core.handle(.stopRequested(immediately: false), at: at(20))
        #expect(core.handle(.slotResults(stage: 0, completed([1])), at: at(100)).contains(.pushToAggregator(ReplyBatch(outcomes: completed([1])))))
        let replied = core.handle(.aggregatorAccepted, at: at(110))
        #expect(try replies(replied).count == 1)
        #expect(!sends(replied).contains { $0.message == .disconnect })
        #expect(replied.contains(.scheduleTick(at: at(610))))
        #expect(!core.handle(.tick, at: at(600)).contains(.finish))
        let goodbye = core.handle(.tick, at: at(610))
        #expect(sends(goodbye).filter { $0.message == .disconnect }.count == 1)
        #expect(sends(goodbye).last?.message == .disconnect)
        #expect(goodbye.last == .finish)
    }

    @Test func theGracePeriodEndsTheDrain() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]), grace: .seconds(1))
        _ = core.handle(.brokerMessage(stage: 0, request([1, 2])), at: at(10))
        _ = core.handle(.stopRequested(immediately: false), at: at(100))
        _ = core.handle(.brokerMessage(stage: 0, .heartbeat), at: at(500))
        #expect(core.handle(.tick, at: at(600)).contains(.scheduleTick(at: at(1100))))
        let over = core.handle(.tick, at: at(1100))
        #expect(over.contains(.notice(.graceExpired(unfinished: 2, handedBack: 0))))
        #expect(sends(over).filter { $0.message == .disconnect }.count == 1)
        #expect(sends(over).last?.message == .disconnect)
        #expect(over.last == .finish)
    }

    @Test func aSecondStopEndsTheDrainAtOnce() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]), grace: .seconds(10))
        _ = core.handle(.brokerMessage(stage: 0, request([1])), at: at(10))
        #expect(!core.handle(.stopRequested(immediately: false), at: at(20)).contains(.finish))
        let now = core.handle(.stopRequested(immediately: true), at: at(30))
        #expect(sends(now).map(\.message) == [.disconnect])
        #expect(now.last == .finish)
    }

    @Test func aBrokerLostWhileDrainingEndsTheDrain() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]), grace: .seconds(10))
        _ = core.handle(.brokerMessage(stage: 0, request([1])), at: at(10))
        _ = core.handle(.stopRequested(immediately: false), at: at(20))
        let lost = core.handle(.tick, at: at(1510))
        #expect(lost.contains(.notice(.brokerSilent(expiry: .milliseconds(1500)))))
        #expect(lost.last == .finish)
        #expect(!lost.contains { if case .reconnect = $0 { true } else { false } })
    }

    // MARK: Stage files and unknown stages

    func shippingCore(stages: Set<String>? = nil) -> WorkerSessionCore {
        var configuration = WorkerConfiguration(brokerEndpoint: broker, stages: stages, nodeID: "node-1")
        configuration.stageFileCache = StageFileCache(directory: "/var/cache/lc")
        return WorkerSessionCore(configuration: configuration) { _ in .available }
    }

    let script = Array("import sys\nfor line in sys.stdin: print(line.upper(), end='')\n".utf8)
    var scriptFile: StageFile { StageFile(path: "scripts/shout.py", sha256: SHA256.hexDigest(script), size: script.count, executable: false) }

    func shippingTopology() -> Topology {
        topology([StageSpec(name: "shout", handler: .exec(ExecSpec(command: ["python3", "-u", "scripts/shout.py"])))])
    }

    /// The `mmi.topology` answer of a broker that ships `files` for stage `shout`.
    func answer(_ topology: Topology, shipping files: [StageFile]) throws -> WorkerInput {
        let json = try JSONEncoder().encode(TopologyAnswer(topology: topology, stageFiles: ["shout": files]))
        return .topologyReply(ClientMessage(service: "mmi.topology", body: [Array("200".utf8), Array(json)]).frames)
    }

    func fileReply(_ reply: StageFileReply) -> WorkerInput {
        .topologyReply(ClientMessage(service: StageFiles.service, body: reply.frames).frames)
    }

    @Test func stageFilesAreFetchedCheckedAndCachedBeforeTheStageRegistersWithTheCachedCopy() throws {
        var core = shippingCore()
        _ = core.handle(.start, at: at(0))
        let answered = core.handle(try answer(shippingTopology(), shipping: [scriptFile]), at: at(0))
        #expect(answered.contains(.fetchStageFiles([scriptFile])))
        #expect(!answered.contains { if case .openSession = $0 { true } else { false } }, "not before the file is here")

        let fetched = core.handle(fileReply(StageFileReply(status: .found, sha256: scriptFile.sha256, content: script)), at: at(20))
        #expect(fetched == [.storeStageFile(scriptFile, content: script)])
        let stored = core.handle(.stageFileStored(sha256: scriptFile.sha256, failure: nil), at: at(21))
        let plans = try #require(stored.compactMap { if case .openSession(let plans, _) = $0 { plans } else { nil } }.first)
        guard case .exec(let exec) = plans.first?.spec.handler else { Issue.record("not an exec plan"); return }
        #expect(exec.command == ["python3", "-u", "/var/cache/lc/\(scriptFile.sha256)/shout.py"])
    }

    @Test func aFileThatFailsItsDigestIsNotRunAndTheBrokerIsToldWhy() throws {
        var core = shippingCore()
        _ = core.handle(.start, at: at(0))
        _ = core.handle(try answer(shippingTopology(), shipping: [scriptFile]), at: at(0))
        let forged = core.handle(fileReply(StageFileReply(status: .found, sha256: scriptFile.sha256, content: Array("rm -rf /".utf8))), at: at(10))
        #expect(!forged.contains { if case .storeStageFile = $0 { true } else { false } })
        let report = try #require(forged.compactMap { if case .reportUnserved(_, let stages) = $0 { stages } else { nil } }.first)
        #expect(report.map(\.stage) == ["shout"])
        #expect(report.first?.reason.contains("does not match its SHA-256") == true)
        #expect(core.handle(reportAcknowledged, at: at(11)).contains(.notice(.servesNothing(pipeline: "t"))))
    }

    @Test func aBrokerThatNeverSendsTheFileLeavesTheStageUnservedAfterTheTimeout() throws {
        var core = shippingCore()
        _ = core.handle(.start, at: at(0))
        let answered = core.handle(try answer(shippingTopology(), shipping: [scriptFile]), at: at(0))
        #expect(answered.contains(.scheduleTick(at: at(10_000))))
        #expect(!core.handle(.tick, at: at(9_999)).contains { if case .reportUnserved = $0 { true } else { false } })
        let late = core.handle(.tick, at: at(10_000))
        let report = try #require(late.compactMap { if case .reportUnserved(_, let stages) = $0 { stages } else { nil } }.first)
        #expect(report.first?.reason.contains("did not send it within") == true)
    }

    @Test func aWorkerWithoutACacheFetchesNothingAndRunsTheCommandAsWritten() throws {
        var core = core()
        _ = core.handle(.start, at: at(0))
        let answered = core.handle(try answer(shippingTopology(), shipping: [scriptFile]), at: at(0))
        #expect(!answered.contains { if case .fetchStageFiles = $0 { true } else { false } })
        let plans = try #require(answered.compactMap { if case .openSession(let plans, _) = $0 { plans } else { nil } }.first)
        #expect(plans.first?.spec == shippingTopology().stages[0])
    }

    @Test func anUnknownStageNameEndsTheWorkerWithAnError() throws {
        var core = shippingCore(stages: ["shout", "nosuch"])
        _ = core.handle(.start, at: at(0))
        let answered = core.handle(try answer(shippingTopology()), at: at(0))
        let failure = try #require(answered.compactMap { if case .fail(let error) = $0 { error } else { nil } }.first)
        #expect(failure.code == .unknownStage)
        #expect(failure.message.contains("'nosuch'") && failure.message.contains("its stages are shout"))
        #expect(core.isFinished)
    }
}

// MARK: Adaptive credit

extension WorkerSessionCoreTests {
    func refreshes(_ actions: [WorkerAction]) -> [(stage: Int, capabilities: Capabilities)] {
        sends(actions).compactMap { if case .refresh(let capabilities) = $0.message { ($0.stage, capabilities) } else { nil } }
    }

    @Test func aStageWithoutCreditProbesTheRoundTripAndAnnouncesTheCreditItGrowsTo() throws {
        var (core, opened) = try serving(topology([StageSpec(name: "a", handler: .external)]))
        #expect(opened.contains(.scheduleTick(at: at(0))))
        // The first probe goes at once; it is the stage's heartbeat too.
        let first = refreshes(core.handle(.tick, at: at(0)))
        #expect(first.map(\.stage) == [0])
        #expect(first.first?.capabilities.values == ["probe": "1"])
        // The broker's echo, 100 ms later.
        _ = core.handle(.brokerMessage(stage: 0, .refresh(capabilities: Capabilities(["probe": "1"]))), at: at(100))
        // Four items every 10 ms, answered at once: 400 items/s, at the floor credit of 4.
        var next: UInt64 = 1
        for time in stride(from: 100, to: 250, by: 10) {
            let ids = Array(next..<next + 4)
            next += 4
            _ = core.handle(.brokerMessage(stage: 0, request(ids)), at: at(time))
            _ = core.handle(.slotResults(stage: 0, completed(ids)), at: at(time + 1))
        }
        // The window closes: 400/s x 100 ms x 2 + 1 slot = 81, at most doubling: credit 8, with the round trip behind it.
        let announced = refreshes(core.handle(.tick, at: at(250)))
        #expect(announced.map(\.stage) == [0])
        #expect(announced.first?.capabilities.refreshedCredit == 8)
        #expect(announced.first?.capabilities.roundTrip == .milliseconds(100))
    }

    @Test func aCreditTheTopologySetsIsNeverProbedNorChanged() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external, credit: 4)]))
        var next: UInt64 = 1
        for time in stride(from: 0, to: 3000, by: 10) {
            let ids = Array(next..<next + 4)
            next += 4
            let actions = core.handle(.brokerMessage(stage: 0, request(ids)), at: at(time))
                + core.handle(.slotResults(stage: 0, completed(ids)), at: at(time + 1))
                + core.handle(.tick, at: at(time + 5))
            #expect(refreshes(actions).isEmpty)
        }
    }

    @Test func aDrainingWorkerNeitherProbesNorChangesItsCredit() throws {
        var (core, _) = try serving(topology([StageSpec(name: "a", handler: .external)]), grace: .seconds(10))
        _ = core.handle(.tick, at: at(0))
        _ = core.handle(.brokerMessage(stage: 0, .refresh(capabilities: Capabilities(["probe": "1"]))), at: at(100))
        _ = core.handle(.brokerMessage(stage: 0, request([1, 2])), at: at(110))
        _ = core.handle(.stopRequested(immediately: false), at: at(120))
        var sent: [(stage: Int, capabilities: Capabilities)] = []
        for time in stride(from: 130, to: 2000, by: 50) {
            sent += refreshes(core.handle(.slotResults(stage: 0, completed([])), at: at(time)) + core.handle(.tick, at: at(time + 1)))
        }
        #expect(sent.isEmpty)
    }
}
