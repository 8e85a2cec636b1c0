// The MDP/0.1 frames and LANCompute's extensions: encode, decode, and reject what breaks the protocol.

import Testing
@testable import LANCompute

@Suite struct WireTests {
    @Test func workerMessagesRoundTrip() throws {
        let messages: [WorkerMessage] = [
            .ready(service: "split", capabilities: nil),
            .ready(service: "split", capabilities: Capabilities(["credit": "8", "label.gpu": "metal"])),
            .request(client: [1, 2], body: [[], Array("x".utf8)]),
            .reply(client: [3], body: [Array("y".utf8)]),
            .heartbeat,
            .disconnect,
        ]
        for message in messages { #expect(try WorkerMessage(frames: message.frames) == message) }
    }

    @Test func readyFramesAreExactlyRFC7() {
        #expect(WorkerMessage.ready(service: "echo", capabilities: nil).frames == [[], Array("MDPW01".utf8), [0x01], Array("echo".utf8)])
        #expect(WorkerMessage.heartbeat.frames == [[], Array("MDPW01".utf8), [0x04]])
    }

    @Test(arguments: [
        [[UInt8]](),
        [[1], Array("MDPW01".utf8), [0x04]],
        [[], Array("MDPW02".utf8), [0x04]],
        [[], Array("MDPW01".utf8), [0x09]],
        [[], Array("MDPW01".utf8), [0x01]],
        [[], Array("MDPW01".utf8), [0x01], []],
        [[], Array("MDPW01".utf8), [0x02], [1], [9]],
        [[], Array("MDPW01".utf8), [0x04], [1]],
        [[], Array("MDPW01".utf8), [0x01], Array("s".utf8), [200, 1]],
    ])
    func malformedWorkerMessagesAreRejected(frames: [[UInt8]]) {
        #expect(throws: WireError.self) { try WorkerMessage(frames: frames) }
    }

    @Test func capabilitiesUseZMTPMetadataEncoding() throws {
        let capabilities = Capabilities(["credit": "16"])
        #expect(capabilities.encoded() == [6] + Array("credit".utf8) + [0, 0, 0, 2] + Array("16".utf8))
        #expect(try Capabilities(decoding: capabilities.encoded()) == capabilities)
        #expect(capabilities.credit == 16)
        #expect(Capabilities().credit == 1)
        #expect(throws: WireError.self) { try Capabilities(decoding: [6] + Array("credit".utf8) + [0, 0, 0, 9]) }
    }

    @Test func requestBatchRoundTripsAndChecksFrameCount() throws {
        let batch = RequestBatch(items: [
            RequestBatch.Item(ItemHeader(id: 1, attempt: 1, priority: -2, deadline: 99, key: Array("k".utf8), traceparent: Array("00-ab".utf8)), Array("one".utf8)),
            RequestBatch.Item(ItemHeader(id: UInt64.max, attempt: 3), []),
        ])
        #expect(try RequestBatch(frames: batch.frames) == batch)
        #expect(throws: WireError.self) { try RequestBatch(frames: Array(batch.frames.dropLast())) }
        #expect(throws: WireError.self) { try RequestBatch(frames: [Array(batch.frames[0].dropLast())] + batch.frames.dropFirst()) }
    }

    @Test func replyBatchRoundTripsEveryOutcome() throws {
        let reply = ReplyBatch(outcomes: [
            ItemOutcome(id: 1, attempt: 1, status: .completed(outputs: [[1], [], [2, 3]])),
            ItemOutcome(id: 2, epoch: 77, attempt: 2, status: .deliveredToAggregator(count: 4)),
            ItemOutcome(id: 3, attempt: 1, status: .failed(message: "bad", stderr: "trace")),
            ItemOutcome(id: 4, attempt: 1, status: .completed(outputs: [])),
        ])
        #expect(try ReplyBatch(frames: reply.frames) == reply)
        #expect(throws: WireError.self) { try ReplyBatch(frames: reply.frames + [[0]]) }
        #expect(throws: WireError.self) { try ReplyBatch(frames: Array(reply.frames.prefix(2))) }
    }

    @Test func aHandedBackOutcomeTravelsOnlyInVersionThree() throws {
        let reply = ReplyBatch(outcomes: [
            ItemOutcome(id: 1, attempt: 1, status: .deliveredToAggregator(count: 1)),
            ItemOutcome(id: 2, epoch: 9, attempt: 1, status: .returned),
        ])
        #expect(reply.frames.count == 1 && reply.frames[0].first == ReplyBatch.chainVersion)
        #expect(try ReplyBatch(frames: reply.frames) == reply)
        // A version 2 header with status 4 (as an older worker never writes) is refused, naming it.
        var older = reply.frames[0]
        older[0] = ReplyBatch.version
        #expect(throws: WireError.self) { try ReplyBatch(frames: [older]) }
        #expect(ReplyBatch(outcomes: [ItemOutcome(id: 1, attempt: 1, status: .failed(message: "", stderr: ""))]).frames[0].first == ReplyBatch.version)
    }

    @Test func derivedIDsAreStableAndDistinct() {
        #expect(ItemID.derived(parent: 5, stageIndex: 1, outputIndex: 0) == ItemID.derived(parent: 5, stageIndex: 1, outputIndex: 0))
        var seen = Set<UInt64>()
        for parent in 0..<200 {
            for stage in 0..<3 {
                for output in 0..<20 { seen.insert(ItemID.derived(parent: UInt64(parent), stageIndex: stage, outputIndex: output)) }
            }
        }
        #expect(seen.count == 200 * 3 * 20)
    }

    @Test func itemTokenIsFourteenBytes() throws {
        let token = ItemToken(id: 0x0102_0304_0506_0708, epoch: 0x0A0B_0C0D, attempt: 3)
        #expect(token.bytes == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 0, 3])
        #expect(try ItemToken(bytes: token.bytes) == token)
        #expect(throws: WireError.self) { try ItemToken(bytes: [1, 2]) }
    }
}
