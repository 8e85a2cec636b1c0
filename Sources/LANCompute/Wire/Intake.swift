// The acknowledged-intake frames: a producer's numbered batch to `lancompute.intake`, and the broker's ack or error.

/// Constants of acknowledged intake (Docs/protocol.md, section 14).
public enum Intake {
    /// The MDP/0.1 client service a producer sends its batches to, on the broker's dispatch ROUTER.
    public static let service = "lancompute.intake"
    /// The first frame of an acknowledgement.
    public static let ackKind: [UInt8] = Array("ack".utf8)
    /// The first frame of a refusal (the same word as every MDP client error reply of the broker).
    public static let errorKind: [UInt8] = Array("error".utf8)
    /// The most batches a producer may have unacknowledged at once: the broker remembers this many
    /// above a producer's highest contiguous sequence, and refuses (busy) a batch beyond them.
    public static let maximumWindow = 256
}

/// Who sent a batch: 16 random octets chosen once per producer run, so batches of different
/// producers never share sequence numbers.
public struct IntakeProducerID: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 16
    public let bytes: [UInt8]

    /// `bytes` must be 16 octets; nil otherwise.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// A fresh random id.
    public static func random() -> IntakeProducerID {
        var generator = SystemRandomNumberGenerator()
        return IntakeProducerID(bytes: (0..<byteCount).map { _ in UInt8.random(in: 0...255, using: &generator) })!
    }

    /// The id of the producer called `name`: the same name gives the same id on every machine,
    /// so a restarted producer is recognised (not a secret, and not meant to resist collisions by design).
    public init(named name: String) {
        let text = Array(name.utf8)
        var bytes: [UInt8] = []
        for seed: UInt8 in [0x4C, 0x43] {
            var word = fnv1a([seed] + text)
            for _ in 0..<8 {
                bytes.append(UInt8(truncatingIfNeeded: word >> 56))
                word <<= 8
            }
        }
        self.bytes = bytes
    }

    public var description: String { hex(bytes) }
}

/// A producer's batch: `[producer id (16), sequence (8, big-endian, from 1), item...]` as the body
/// of an MDP client request to ``Intake/service``.
public struct IntakeBatch: Equatable, Sendable {
    public var producer: IntakeProducerID
    /// 1 for the producer's first batch, then one more for each new batch; a resend keeps its number.
    public var sequence: UInt64
    /// One frame per item, bytes as they are.
    public var items: [[UInt8]]

    public init(producer: IntakeProducerID, sequence: UInt64, items: [[UInt8]]) {
        self.producer = producer
        self.sequence = sequence
        self.items = items
    }

    /// The client request body: producer id, sequence, then the items.
    public var body: [[UInt8]] {
        var body: [[UInt8]] = [producer.bytes, Self.sequenceFrame(sequence)]
        body.reserveCapacity(2 + items.count)
        body.append(contentsOf: items)
        return body
    }

    /// The whole request as a DEALER sends it (empty delimiter first).
    public var frames: [[UInt8]] { ClientMessage(service: Intake.service, body: body).frames }

    /// Parses a client request body; the error names the bad frame (counted from 0 in the body).
    public init(body: [[UInt8]]) throws(WireError) {
        guard body.count >= 2 else {
            throw WireError("an intake batch needs at least 2 body frames (producer id, sequence), got \(body.count)")
        }
        guard let producer = IntakeProducerID(bytes: body[0]) else {
            throw WireError("intake body frame 0 (producer id) must be 16 octets, got \(body[0].count)")
        }
        guard body[1].count == 8 else { throw WireError("intake body frame 1 (sequence) must be 8 octets, got \(body[1].count)") }
        var reader = ByteReader(body[1])
        let sequence = try reader.readUInt64("the sequence number")
        guard sequence > 0 else { throw WireError("intake body frame 1 (sequence) must be at least 1, got 0") }
        self.producer = producer
        self.sequence = sequence
        self.items = Array(body[2...])
    }

    static func sequenceFrame(_ sequence: UInt64) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(8)
        frame.appendBigEndian(sequence)
        return frame
    }
}

/// The broker's acknowledgement of one batch: every item is now the broker's responsibility,
/// either in the pipeline (`accepted`) or in the dead letters (`deadLettered`, by index in the batch).
///
/// Frame: version (1, `0x01`), producer id (16), sequence (8), status (1), accepted (4),
/// dead-lettered count D (4), then D indexes (4 each, from 0, ascending).
public struct IntakeAck: Equatable, Sendable {
    public static let version: UInt8 = 1

    public enum Status: UInt8, Sendable {
        /// The batch was accepted by this request.
        case accepted = 0
        /// A resend of a batch accepted before: nothing was accepted again; the counts are the first acceptance's.
        case duplicate = 1
        /// A resend of a batch accepted so long ago that its counts are no longer remembered (reported as 0).
        case duplicateForgotten = 2
    }

    public var producer: IntakeProducerID
    public var sequence: UInt64
    public var status: Status
    public var accepted: Int
    /// Positions (from 0) in the batch of the items that went to the dead letters instead.
    public var deadLettered: [Int]

    public init(producer: IntakeProducerID, sequence: UInt64, status: Status, accepted: Int, deadLettered: [Int] = []) {
        self.producer = producer
        self.sequence = sequence
        self.status = status
        self.accepted = accepted
        self.deadLettered = deadLettered
    }

    /// The reply body: `ack`, then the ack frame.
    public var body: [[UInt8]] { [Intake.ackKind, frame] }

    public var frame: [UInt8] {
        var frame: [UInt8] = [Self.version]
        frame.reserveCapacity(34 + 4 * deadLettered.count)
        frame += producer.bytes
        frame.appendBigEndian(sequence)
        frame.append(status.rawValue)
        frame.appendBigEndian(UInt32(clamping: accepted))
        frame.appendBigEndian(UInt32(clamping: deadLettered.count))
        for index in deadLettered { frame.appendBigEndian(UInt32(clamping: index)) }
        return frame
    }

    /// Parses the ack frame (reply body frame 1); the error names the bad field.
    public init(frame: [UInt8]) throws(WireError) {
        var reader = ByteReader(frame)
        let version = try reader.readUInt8("the ack version")
        guard version == Self.version else { throw WireError("intake ack: version \(version), expected \(Self.version)") }
        producer = IntakeProducerID(bytes: try reader.readBytes(IntakeProducerID.byteCount, "the ack's producer id"))!
        sequence = try reader.readUInt64("the ack's sequence")
        let rawStatus = try reader.readUInt8("the ack's status")
        guard let status = Status(rawValue: rawStatus) else { throw WireError("intake ack: unknown status \(rawStatus)") }
        self.status = status
        accepted = Int(try reader.readUInt32("the accepted count"))
        let count = Int(try reader.readUInt32("the dead-lettered count"))
        guard reader.remaining == 4 * count else {
            throw WireError("intake ack: \(count) dead-lettered indexes announced, \(reader.remaining) octets follow")
        }
        deadLettered = []
        deadLettered.reserveCapacity(count)
        for _ in 0..<count { deadLettered.append(Int(try reader.readUInt32("a dead-lettered index"))) }
    }
}

/// Why the broker refused a batch: a stable code, and whether the same batch may succeed later.
public enum IntakeRefusal: Sendable, CaseIterable {
    /// The body did not parse (LC3007). Never retried.
    case malformed
    /// The pipeline has no intake: its source is not `pull` (LC2030). Never retried.
    case noIntake
    /// The pipeline is stopping and takes nothing new (LC2031). Never retried.
    case draining
    /// The broker's queues are full, or the batch is too far ahead of the producer's last
    /// acknowledged one (LC2032): back off and send the same batch again.
    case busy

    /// `LCnnnn`, from the one catalogue of codes.
    public var code: String {
        switch self {
        case .malformed: ProtocolErrorCode.malformedIntake.code
        case .noIntake: RuntimeErrorCode.intakeNotOffered.code
        case .draining: RuntimeErrorCode.intakeDraining.code
        case .busy: RuntimeErrorCode.intakeBusy.code
        }
    }
    public var isRetryable: Bool { self == .busy }
}

/// The broker's refusal of a batch: `error`, `"LCnnnn: reason"`, and (when the request's producer id
/// and sequence could be read) a 24-octet reference frame: producer id (16), sequence (8).
public struct IntakeError: Equatable, Sendable {
    /// The code, when it is one of the intake refusals; nil for any other (e.g. LC3004 from a broker without intake).
    public var refusal: IntakeRefusal?
    /// The whole reason as sent, starting with its code.
    public var message: String
    /// The batch refused, when the broker could tell.
    public var producer: IntakeProducerID?
    public var sequence: UInt64?

    public init(_ refusal: IntakeRefusal, reason: String, producer: IntakeProducerID?, sequence: UInt64?) {
        self.refusal = refusal
        self.message = "\(refusal.code): \(reason)"
        self.producer = producer
        self.sequence = sequence
    }

    public var body: [[UInt8]] {
        var body = [Intake.errorKind, Array(message.utf8)]
        if let producer, let sequence { body.append(producer.bytes + IntakeBatch.sequenceFrame(sequence)) }
        return body
    }

    /// Parses an `error` reply body (2 or 3 frames).
    public init(body: [[UInt8]]) throws(WireError) {
        guard body.first == Intake.errorKind else { throw WireError("reply body frame 0 is not \"error\"") }
        guard body.count == 2 || body.count == 3 else { throw WireError("an error reply has 2 or 3 body frames, got \(body.count)") }
        message = String(decoding: body[1], as: UTF8.self)
        refusal = IntakeRefusal.allCases.first { message.hasPrefix($0.code + ":") }
        if body.count == 3 {
            guard body[2].count == 24 else { throw WireError("error reply body frame 2 (batch reference) must be 24 octets, got \(body[2].count)") }
            producer = IntakeProducerID(bytes: Array(body[2][0..<16]))
            var reader = ByteReader(Array(body[2][16...]))
            sequence = try reader.readUInt64("the referenced sequence")
        } else {
            producer = nil
            sequence = nil
        }
    }
}

/// The broker's answer to one batch, as a producer reads it.
public enum IntakeReply: Equatable, Sendable {
    case ack(IntakeAck)
    case error(IntakeError)

    /// Parses the body of an `MDPC01` reply from ``Intake/service``.
    public init(body: [[UInt8]]) throws(WireError) {
        guard let kind = body.first else { throw WireError("an intake reply has no body") }
        if kind == Intake.ackKind {
            guard body.count == 2 else { throw WireError("an ack reply has 2 body frames, got \(body.count)") }
            self = .ack(try IntakeAck(frame: body[1]))
        } else if kind == Intake.errorKind {
            self = .error(try IntakeError(body: body))
        } else {
            throw WireError("reply body frame 0 is neither \"ack\" nor \"error\"")
        }
    }
}
