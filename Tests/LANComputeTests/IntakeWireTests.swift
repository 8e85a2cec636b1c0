// The acknowledged-intake frames: layouts byte for byte, round trips, and errors that name the bad frame.

import Testing
@testable import LANCompute

@Suite struct IntakeWireTests {
    let producer = IntakeProducerID(bytes: Array(0..<16))!

    @Test func aBatchIsProducerSequenceThenItems() throws {
        let batch = IntakeBatch(producer: producer, sequence: 258, items: [Array("a".utf8), [0, 0xFF], []])
        #expect(batch.frames.prefix(3) == [[], Array("MDPC01".utf8), Array("lancompute.intake".utf8)])
        #expect(batch.body[1] == [0, 0, 0, 0, 0, 0, 1, 2])
        #expect(try IntakeBatch(body: batch.body) == batch)
    }

    @Test func malformedBatchesNameTheFrame() {
        #expect(throws: WireError("intake body frame 0 (producer id) must be 16 octets, got 3")) {
            try IntakeBatch(body: [[1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 1]])
        }
        #expect(throws: WireError("intake body frame 1 (sequence) must be 8 octets, got 2")) {
            try IntakeBatch(body: [producer.bytes, [0, 1]])
        }
        #expect(throws: WireError("intake body frame 1 (sequence) must be at least 1, got 0")) {
            try IntakeBatch(body: [producer.bytes, Array(repeating: 0, count: 8)])
        }
        #expect(throws: WireError("an intake batch needs at least 2 body frames (producer id, sequence), got 1")) {
            try IntakeBatch(body: [producer.bytes])
        }
    }

    @Test func anAckCarriesCountsAndDeadLetteredIndexes() throws {
        let ack = IntakeAck(producer: producer, sequence: 7, status: .accepted, accepted: 254, deadLettered: [3, 9])
        let expected: [UInt8] = [1] + Array(0..<16) + [0, 0, 0, 0, 0, 0, 0, 7] + [0] + [0, 0, 0, 254] + [0, 0, 0, 2] + [0, 0, 0, 3, 0, 0, 0, 9]
        #expect(ack.frame == expected)
        #expect(try IntakeReply(body: ack.body) == .ack(ack))
        #expect(throws: WireError("intake ack: 2 dead-lettered indexes announced, 4 octets follow")) {
            try IntakeAck(frame: Array(expected.dropLast(4)))
        }
    }

    @Test func anErrorNamesItsCodeAndTheBatch() throws {
        let error = IntakeError(.busy, reason: "busy, retry later", producer: producer, sequence: 5)
        #expect(error.body[1] == Array("LC2032: busy, retry later".utf8))
        #expect(error.body[2] == Array(0..<16) + [0, 0, 0, 0, 0, 0, 0, 5])
        guard case .error(let parsed) = try IntakeReply(body: error.body) else { Issue.record("not an error"); return }
        #expect(parsed.refusal == .busy && parsed.refusal?.isRetryable == true)
        #expect(parsed.sequence == 5 && parsed.producer == producer)
        // An older broker's answer (unknown service) is an error without a batch reference or intake code.
        let unknown = try IntakeError(body: [Array("error".utf8), Array("LC3004: unknown service lancompute.intake".utf8)])
        #expect(unknown.refusal == nil && unknown.sequence == nil)
    }
}
