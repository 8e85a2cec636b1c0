// Checks the engine's actor messages round-trip, the aggregator actor's handshake and failures, and the broker's exposure refusal.

import Foundation
import Logging
import Testing
import ZeroMQ
@testable import LANCompute

@Suite(.timeLimit(.minutes(1)))
struct EngineActorTests {
    @Test func aggregatorMessagesRoundTrip() throws {
        let events: [AggregatorEvent] = [.bound("tcp://127.0.0.1:5557"), .acknowledged([]), .acknowledged([1, 1 << 63, .max]),
                                         .finished(outputs: 12, items: 3), .committed([4, 5], sinkLength: 1 << 40)]
        for event in events { #expect(try AggregatorEvent(frames: event.frames) == event) }
        let batch = ReplyBatch(outcomes: [ItemOutcome(id: 9, attempt: 1, status: .completed(outputs: [[1, 2]]))])
        guard case .outputs(let decoded) = try AggregatorCommand(frames: AggregatorCommand.outputs(batch).frames) else {
            Issue.record("outputs did not decode as outputs")
            return
        }
        #expect(decoded == batch)
        guard case .finish = try AggregatorCommand(frames: AggregatorCommand.finish.frames) else {
            Issue.record("finish did not decode as finish")
            return
        }
        #expect(throws: WireError.self) { try AggregatorEvent(frames: [[2], [1, 2, 3]]) }
        #expect(throws: WireError.self) { try AggregatorEvent(frames: [[9], []]) }
        #expect(throws: WireError.self) { try AggregatorCommand(frames: []) }
    }

    @Test func theSourceReaderHandsOverOneMessagePerDoorbellInOrder() throws {
        let sockets = SocketFactory()
        let pull = try sockets.socket(.source(maxMessageSize: 1 << 20, fromReader: true))
        let endpoint = "inproc://source-handoff-\(UUID().uuidString)"
        try pull.bind(endpoint)
        let handoff = SourceHandoff()
        let spec = SourceSpec(kind: .generate(count: 600, size: 40))
        let reader = try SourceReader(spec: spec, sockets: sockets, endpoint: endpoint, handoff: handoff, logger: Logger(label: "test")).start()
        defer { reader.stop() }
        var taken: [SourceMessage] = []
        // Bounded: three batches, the total and the end are five messages.
        for _ in 0..<50 {
            guard try pull.poll(.in, timeout: .seconds(5)).contains(.in) else { break }
            #expect(try pull.receiveMultipart() == [SourceHandoff.doorbell])
            let message = try #require(handoff.take(), "a doorbell came with nothing handed over")
            taken.append(message)
            if case .end = message { break }
        }
        let generated: [[UInt8]] = (0..<600).map { SourceReader.generated(index: $0, size: 40) }
        var expected: [SourceMessage] = [.total(600)]
        for first in stride(from: 0, to: 600, by: SourceMessage.batchSize) {
            let payloads = Array(generated[first..<min(first + SourceMessage.batchSize, 600)])
            expected.append(.batch(firstID: UInt64(first), payloads: payloads))
        }
        expected.append(.end(count: 600))
        #expect(taken == expected)
        #expect(handoff.take() == nil)
    }

    @Test func theAggregatorWritesOnlyWhatTheBrokerAdmits() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aggregator-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = SinkSpec(kind: .file(path: directory.appendingPathComponent("out.txt").path))
        let aggregator = Aggregator(sink: sink, bindEndpoint: "tcp://127.0.0.1:*", maxFrameSize: 1 << 20, inprocEndpoint: nil,
                                    sockets: SocketFactory(), logger: Logger(label: "test"), epoch: 9)
        let actor = try aggregator.start()
        guard case .bound(let endpoint) = actor.readyReport else {
            Issue.record("no bound endpoint in the ready report")
            return
        }
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
        // A worker PUSHes outputs: items 7 and 8 of this run, item 5 of another run.
        let push = try SocketFactory().socket(.workerOutputs)
        defer { push.close() }
        try push.connect(endpoint)
        try push.send(multipart: ReplyBatch(outcomes: [
            ItemOutcome(id: 7, epoch: 9, attempt: 1, status: .completed(outputs: [Array("seven".utf8)])),
            ItemOutcome(id: 8, epoch: 9, attempt: 2, status: .completed(outputs: [Array("eight".utf8)])),
            ItemOutcome(id: 5, epoch: 4, attempt: 1, status: .completed(outputs: [Array("stale".utf8)])),
        ]).frames)
        var offered: [OfferedOutput] = []
        for _ in 0..<10 where offered.isEmpty {
            if case .offered(let offers) = try actor.receive(timeout: .seconds(5)) { offered = offers }
        }
        #expect(offered == [OfferedOutput(id: 7, epoch: 9, attempt: 1), OfferedOutput(id: 8, epoch: 9, attempt: 2)])
        // The broker admits 7 and refuses 8 (dead-lettered meanwhile); a plain worker's output comes forwarded.
        try actor.send(.admission(admitted: [7], refused: [8]))
        try actor.send(.outputs(ReplyBatch(outcomes: [ItemOutcome(id: 3, epoch: 9, attempt: 1, status: .completed(outputs: [Array("three".utf8)]))])))
        try actor.send(.finish)
        var acknowledged: [UInt64] = []
        var totals: (UInt64, UInt64)?
        for _ in 0..<10 where totals == nil {
            switch try actor.receive(timeout: .seconds(5)) {
            case .acknowledged(let ids), .committed(let ids, _): acknowledged += ids
            case .finished(let outputs, let items): totals = (outputs, items)
            case .bound, .offered, nil: break
            }
        }
        #expect(acknowledged == [7, 3])
        #expect(totals?.0 == 2)
        #expect(totals?.1 == 2)
        actor.join()
        #expect(actor.hasEnded)
        #expect(try String(contentsOf: directory.appendingPathComponent("out.txt"), encoding: .utf8) == "seven\nthree\n")
    }

    @Test func admissionsAndOffersRoundTrip() throws {
        let commands: [AggregatorCommand] = [.admission(admitted: [1, 2], refused: []), .finish,
                                             .outputs(ReplyBatch(outcomes: [ItemOutcome(id: 1, epoch: 2, attempt: 3, status: .completed(outputs: [[4]]))]))]
        for command in commands { #expect(try AggregatorCommand(frames: command.frames) == command) }
        let events: [AggregatorEvent] = [.offered([OfferedOutput(id: 1, epoch: 2, attempt: 3)]), .acknowledged([5]), .bound("x"),
                                         .finished(outputs: 1, items: 2)]
        for event in events { #expect(try AggregatorEvent(frames: event.frames) == event) }
        #expect(throws: (any Error).self) { try AggregatorEvent(frames: [[4], [1, 2, 3]]) }
    }

    @Test func aBusyAggregatorEndpointIsThrownByStart() throws {
        let busy = try SocketFactory().socket(.aggregator(maxMessageSize: 1))
        try busy.bind("tcp://127.0.0.1:*")
        let aggregator = Aggregator(sink: SinkSpec(kind: .stdout), bindEndpoint: try busy.lastEndpoint, maxFrameSize: 1 << 20,
                                    inprocEndpoint: nil, sockets: SocketFactory(), logger: Logger(label: "test"), epoch: 1)
        #expect {
            _ = try aggregator.start()
        } throws: { error in
            (error as? AggregatorFailure)?.message.hasPrefix("LC2002: cannot bind the aggregator endpoint") == true
        }
    }

    @Test func theBrokerRefusesANetworkBindUnlessInsecure() throws {
        var topology = Topology(
            name: "exposed", source: SourceSpec(kind: .generate(count: 1, size: 8)),
            stages: [StageSpec(name: "copy", handler: .builtin(name: "identity", options: [:]))],
            sink: SinkSpec(kind: .stdout))
        topology.broker.bind = "tcp://0.0.0.0:*"
        topology.broker.aggregator = "tcp://127.0.0.1:*"
        let configuration = BrokerConfiguration(topology: topology, eventsEndpoint: nil, eventsRequired: false)
        let broker = Broker(configuration: configuration, logger: Logger(label: "test"))
        #expect {
            _ = try broker.run()
        } throws: { error in
            (error as? BrokerError).map { $0.code == .unencryptedExposure && $0.message.hasPrefix("the dispatch endpoint tcp://0.0.0.0:*") } == true
        }
    }
}
