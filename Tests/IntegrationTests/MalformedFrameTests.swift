// Garbage and wrong-protocol frames sent to a running broker are counted and survived.

import Foundation
import LANCompute
import Testing
import ZeroMQ

@Suite(.serialized, .timeLimit(.minutes(3))) struct MalformedFrameTests {
    static let itemCount = 3000

    @Test func brokerSurvivesGarbageAndFinishesExactly() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let lines = (0..<Self.itemCount).map { "item-\($0)" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: garbage
            source:
              file: input.txt
            stages:
              - name: upper
                builtin: upper
            sink:
              file: out.txt
            """.write(toFile: harness.path("garbage.yaml"), atomically: true, encoding: .utf8)

        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("garbage.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", "none", "--json",
        ])
        try #require(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")

        let context = try Context()
        defer { context.shutdown() }
        var sockets: [Socket] = []
        defer { for socket in sockets { socket.close() } }
        /// A fresh peer each time, so every message arrives from a worker the broker has never seen.
        func peer() throws -> Socket {
            let socket = try Socket(.dealer, context: context)
            try socket.connect(dispatch)
            sockets.append(socket)
            return socket
        }
        let header = Array("MDPW01".utf8)
        let token = ItemToken(id: 1, attempt: 1).bytes
        var expectedErrors = 0

        // No worker is registered yet: the items wait in the broker while it is fed garbage.
        var generator = SystemRandomNumberGenerator()
        for size in [1, 7, 64, 1000] {
            try peer().send((0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) })
            expectedErrors += 1
        }
        try peer().send(multipart: [[UInt8](), [0xFF, 0x00], [0x01]])
        try peer().send([UInt8]())
        try peer().send(multipart: [[UInt8](), [UInt8]()])
        expectedErrors += 3
        // Worker-protocol messages that are malformed or not allowed: each is counted and answered with DISCONNECT.
        let refused: [[[UInt8]]] = [
            [[], header, [0x09]],                                   // unknown command
            [[], header, [0x01]],                                   // truncated READY
            [[], header, [0x01], []],                               // READY with an empty service name
            [[], header, [0x03], token, [], Array("x".utf8)],       // REPLY from a peer that never sent READY
            [[], header, [0x04]],                                   // HEARTBEAT before READY
            [[], header, [0x01], Array("upper".utf8), [5, 0x61]],   // capabilities frame cut short
            [[], header, [0x01], Array("mmi.echo".utf8)],           // READY for a reserved name
            [[], header, [0x01], Array("no-such-stage".utf8)],      // READY for an unknown stage
        ]
        for message in refused {
            let socket = try peer()
            try socket.send(multipart: message)
            expectedErrors += 1
            let answer = receive(socket, timeout: .seconds(10))
            #expect(answer == WorkerMessage.disconnect.frames, "after \(message)")
        }
        // A client request for a service that does not exist: counted, answered with an error.
        let client = try peer()
        try client.send(multipart: ClientMessage(service: "no-such-service", body: [Array("x".utf8)]).frames)
        expectedErrors += 1
        let clientAnswer = receive(client, timeout: .seconds(10))
        #expect(clientAnswer?.count == 5)
        #expect(clientAnswer.map { Array($0.prefix(4)) } == ClientMessage(service: "no-such-service", body: [Array("error".utf8)]).frames)

        // A LANCompute worker that registers, takes items, then breaks the protocol: its items are sent again.
        let rogue = try peer()
        let capabilities = Capabilities(["protocol": "lancompute/1", "credit": "2", "batch": "2", "node": "rogue"])
        try rogue.send(multipart: WorkerMessage.ready(service: "upper", capabilities: capabilities).frames)
        let request = try #require(receiveRequest(rogue, timeout: .seconds(10)))
        guard case .request(_, let body) = request else { return }
        let batch = try RequestBatch(frames: body)
        #expect(batch.items.count == 2)
        #expect(batch.items.allSatisfy { $0.header.attempt == 1 })
        // A reply header of an unknown version, then one announcing outputs that are not there.
        try rogue.send(multipart: WorkerMessage.reply(client: [], body: [[9, 0, 0, 0, 1]]).frames)
        var short: [UInt8] = [ReplyBatch.version, 0, 0, 0, 1]
        short += ItemToken(id: batch.items[0].header.id, epoch: batch.items[0].header.epoch, attempt: 1).bytes
        short += [0, 0, 0, 0, 5]
        try rogue.send(multipart: WorkerMessage.reply(client: [], body: [short]).frames)
        // An item header where a REPLY header belongs.
        try rogue.send(multipart: WorkerMessage.reply(client: [], body: batch.frames).frames)
        // READY twice: the broker drops the worker and takes its items back.
        try rogue.send(multipart: WorkerMessage.ready(service: "upper", capabilities: capabilities).frames)
        expectedErrors += 4
        #expect(receiveDisconnect(rogue, timeout: .seconds(10)))

        // A plain MDP worker that echoes a client address that is not an item token.
        let plain = try peer()
        try plain.send(multipart: WorkerMessage.ready(service: "upper", capabilities: nil).frames)
        let plainRequest = try #require(receiveRequest(plain, timeout: .seconds(10)))
        guard case .request(let address, let plainBody) = plainRequest else { return }
        #expect(address.count == 14)
        #expect(plainBody.count == 1)
        try plain.send(multipart: WorkerMessage.reply(client: [1, 2, 3], body: plainBody).frames)
        expectedErrors += 1
        try plain.send(multipart: WorkerMessage.disconnect.frames)

        // Now a real worker, and more garbage while it runs.
        try harness.lancompute("worker", ["worker", "--broker", dispatch])
        for _ in 0..<20 {
            try peer().send(multipart: [Array("MDPW01".utf8), [0x02]])
            try peer().send(multipart: [[], header, [0x03], token])
        }

        let status = broker.wait(timeout: .seconds(90))
        #expect(status == 0, "\(harness.transcripts)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(sink.split(separator: "\n").map(String.init).sorted() == lines.map { $0.uppercased() }.sorted())
        let summary = try Summary(json: broker.standardOutput)
        #expect(summary.itemsIn == Self.itemCount)
        #expect(summary.itemsOut == Self.itemCount)
        #expect(summary.deadLettered == 0)
        #expect(summary.protocolErrors >= expectedErrors, "\(harness.transcripts)")
    }

    /// The next message on `socket` within `timeout`, skipping the broker's heartbeats.
    private func receive(_ socket: Socket, timeout: Duration) -> [[UInt8]]? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard (try? socket.poll(.in, timeout: .milliseconds(100)))?.contains(.in) == true,
                  let frames = try? socket.receiveMultipart() else { continue }
            if frames == WorkerMessage.heartbeat.frames { continue }
            return frames
        }
        return nil
    }

    private func receiveRequest(_ socket: Socket, timeout: Duration) -> WorkerMessage? {
        guard let frames = receive(socket, timeout: timeout), let message = try? WorkerMessage(frames: frames),
              case .request = message else { return nil }
        return message
    }

    private func receiveDisconnect(_ socket: Socket, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let frames = receive(socket, timeout: deadline - ContinuousClock.now) else { return false }
            if frames == WorkerMessage.disconnect.frames { return true }
        }
        return false
    }
}
