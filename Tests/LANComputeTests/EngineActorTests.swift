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
                                         .finished(outputs: 12, items: 3)]
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

    @Test func sourceMessagesRoundTrip() throws {
        let messages: [SourceMessage] = [.total(5), .batch(firstID: 256, payloads: [[], [0xFF], Array("x".utf8)]),
                                         .end(count: 300), .failed("LC2010: cannot open source file x")]
        for message in messages { #expect(try SourceMessage(frames: message.frames) == message) }
        #expect(throws: WireError.self) { try SourceMessage(frames: [[1, 0, 0]]) }
        #expect(throws: WireError.self) { try SourceMessage(frames: [[0x42]]) }
    }

    @Test func theAggregatorReportsItsBoundEndpointThenItsTotals() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aggregator-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = SinkSpec(kind: .file(path: directory.appendingPathComponent("out.txt").path))
        let aggregator = Aggregator(sink: sink, bindEndpoint: "tcp://127.0.0.1:*", maxFrameSize: 1 << 20, inprocEndpoint: nil,
                                    sockets: SocketFactory(), logger: Logger(label: "test"))
        let actor = try aggregator.start()
        guard case .bound(let endpoint) = actor.readyReport else {
            Issue.record("no bound endpoint in the ready report")
            return
        }
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
        let batch = ReplyBatch(outcomes: [ItemOutcome(id: 7, attempt: 1, status: .completed(outputs: [Array("seven".utf8)]))])
        try actor.send(.outputs(batch))
        try actor.send(.outputs(batch))  // a redelivery: acknowledged again, written once
        try actor.send(.finish)
        var acknowledged: [UInt64] = []
        var totals: (UInt64, UInt64)?
        for _ in 0..<10 where totals == nil {
            switch try actor.receive(timeout: .seconds(5)) {
            case .acknowledged(let ids): acknowledged += ids
            case .finished(let outputs, let items): totals = (outputs, items)
            case .bound, nil: break
            }
        }
        #expect(acknowledged == [7, 7])
        #expect(totals?.0 == 1)
        #expect(totals?.1 == 1)
        actor.join()
        #expect(actor.hasEnded)
        #expect(try String(contentsOf: directory.appendingPathComponent("out.txt"), encoding: .utf8) == "seven\n")
    }

    @Test func aBusyAggregatorEndpointIsThrownByStart() throws {
        let busy = try SocketFactory().socket(.aggregator(maxMessageSize: 1))
        try busy.bind("tcp://127.0.0.1:*")
        let aggregator = Aggregator(sink: SinkSpec(kind: .stdout), bindEndpoint: try busy.lastEndpoint, maxFrameSize: 1 << 20,
                                    inprocEndpoint: nil, sockets: SocketFactory(), logger: Logger(label: "test"))
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
            (error as? BrokerError)?.message.hasPrefix("LC2005: the dispatch endpoint tcp://0.0.0.0:*") == true
        }
    }
}
