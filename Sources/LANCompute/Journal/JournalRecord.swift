// The journal's records, their binary layout, and the frame (length, its complement, CRC-32) each is written in.

/// Which run of which pipeline a journal belongs to: a resumed run must be the same pipeline over the same source.
struct RunIdentity: Equatable, Sendable {
    /// The epoch the run drew; every run, resumed or not, draws a new one.
    var epoch: UInt32
    /// SHA-256 (hex) of the stages, source and sink as JSON: what item ids depend on.
    var topologyHash: String
    /// The source as the journal knows it: a file's path, size and modification time; a pull endpoint.
    var source: String
}

/// An acknowledged intake batch, as the intake ledger recorded it.
struct IntakeEntry: Equatable, Sendable {
    /// The producer's 16-octet id.
    var producer: [UInt8]
    var sequence: UInt64
    var accepted: UInt32
    /// Positions in the batch of the items dead-lettered instead.
    var deadLettered: [UInt32]
}

/// One settled item: its id and the id of the source item it descends from.
struct SettledEntry: Equatable, Sendable {
    var id: UInt64
    var root: UInt64
}

/// What the journal holds, record by record. A snapshot is a sequence of the same records that,
/// read from the start, rebuilds the state the segments it replaces would have built.
enum JournalRecord: Equatable, Sendable {
    /// A run started (the first run of the journal, or a resumed one).
    case run(RunIdentity)
    /// Source items with consecutive ids from `firstID`, whose payloads cannot be read again
    /// (a `pull` source, standard input): written before their intake is acknowledged.
    case accepted(firstID: UInt64, payloads: [[UInt8]])
    /// Items settled as `settlement` says. For items in the sink, `sinkLength` is the sink's length
    /// in bytes once their outputs were flushed: on resume the sink is cut back to the last one.
    case settled(Settlement, entries: [SettledEntry], sinkLength: UInt64?)
    /// Source items all of whose descendants settled: a resumed run does not process them again.
    case finished(roots: [UInt64])
    /// Snapshot form of `finished`: closed ranges of source ids.
    case finishedRanges([ClosedRange<UInt64>])
    /// An intake batch the broker accepted and acknowledged: a restarted broker rebuilds its intake
    /// ledger from these, so a producer's resend of a batch accepted before the crash is not accepted again.
    case intake(IntakeEntry)

    private enum Kind: UInt8 {
        case run = 1
        case accepted = 2
        case settled = 3
        case finished = 4
        case finishedRanges = 5
        case intake = 6
    }

    var body: [UInt8] {
        var bytes: [UInt8] = []
        appendBody(to: &bytes)
        return bytes
    }

    /// Appends the body to `bytes`: a frame is written around it in the journal's buffer, with no
    /// array of its own (``RecordFrame/append(_:to:)``). No capacity is reserved: the buffer holds
    /// many records, and reserving a little more for each would copy it each time.
    func appendBody(to bytes: inout [UInt8]) {
        func string(_ text: String) {
            bytes.appendBigEndian(UInt32(text.utf8.count))
            bytes += Array(text.utf8)
        }
        switch self {
        case .run(let identity):
            bytes.append(Kind.run.rawValue)
            bytes.appendBigEndian(identity.epoch)
            string(identity.topologyHash)
            string(identity.source)
        case .accepted(let firstID, let payloads):
            bytes.append(Kind.accepted.rawValue)
            bytes.appendBigEndian(firstID)
            bytes.appendBigEndian(UInt32(payloads.count))
            for payload in payloads {
                bytes.appendBigEndian(UInt32(payload.count))
                bytes += payload
            }
        case .settled(let settlement, let entries, let sinkLength):
            bytes.append(Kind.settled.rawValue)
            bytes.append(settlement.rawValue)
            bytes.append(sinkLength == nil ? 0 : 1)
            bytes.appendBigEndian(sinkLength ?? 0)
            bytes.appendBigEndian(UInt32(entries.count))
            for entry in entries {
                bytes.appendBigEndian(entry.id)
                bytes.appendBigEndian(entry.root)
            }
        case .finished(let roots):
            bytes.append(Kind.finished.rawValue)
            bytes.appendBigEndian(UInt32(roots.count))
            for root in roots { bytes.appendBigEndian(root) }
        case .intake(let entry):
            bytes.append(Kind.intake.rawValue)
            bytes.appendBigEndian(UInt32(entry.producer.count))
            bytes += entry.producer
            bytes.appendBigEndian(entry.sequence)
            bytes.appendBigEndian(entry.accepted)
            bytes.appendBigEndian(UInt32(entry.deadLettered.count))
            for position in entry.deadLettered { bytes.appendBigEndian(position) }
        case .finishedRanges(let ranges):
            bytes.append(Kind.finishedRanges.rawValue)
            bytes.appendBigEndian(UInt32(ranges.count))
            for range in ranges {
                bytes.appendBigEndian(range.lowerBound)
                bytes.appendBigEndian(range.upperBound)
            }
        }
    }

    init(body: [UInt8]) throws(WireError) {
        var reader = ByteReader(body)
        func string(_ what: String) throws(WireError) -> String {
            let count = Int(try reader.readUInt32("\(what) length"))
            return String(decoding: try reader.readBytes(count, what), as: UTF8.self)
        }
        func count(_ what: String, each: Int) throws(WireError) -> Int {
            let count = Int(try reader.readUInt32(what))
            // A count the rest of the record cannot hold is damage, not a reason to allocate.
            guard count * each <= reader.remaining else { throw WireError("\(what) \(count) exceeds the record") }
            return count
        }
        switch Kind(rawValue: try reader.readUInt8("record kind")) {
        case .run:
            self = .run(RunIdentity(epoch: try reader.readUInt32("epoch"), topologyHash: try string("topology hash"), source: try string("source")))
        case .accepted:
            let firstID = try reader.readUInt64("first id")
            let total = try count("payload count", each: 4)
            var payloads: [[UInt8]] = []
            payloads.reserveCapacity(total)
            for _ in 0..<total {
                let length = Int(try reader.readUInt32("payload length"))
                payloads.append(try reader.readBytes(length, "payload"))
            }
            self = .accepted(firstID: firstID, payloads: payloads)
        case .settled:
            guard let settlement = Settlement(rawValue: try reader.readUInt8("settlement")) else { throw WireError("unknown settlement") }
            let hasLength = try reader.readUInt8("sink length flag") != 0
            let length = try reader.readUInt64("sink length")
            let total = try count("entry count", each: 16)
            var entries: [SettledEntry] = []
            entries.reserveCapacity(total)
            for _ in 0..<total { entries.append(SettledEntry(id: try reader.readUInt64("id"), root: try reader.readUInt64("root"))) }
            self = .settled(settlement, entries: entries, sinkLength: hasLength ? length : nil)
        case .finished:
            let total = try count("root count", each: 8)
            var roots: [UInt64] = []
            roots.reserveCapacity(total)
            for _ in 0..<total { roots.append(try reader.readUInt64("root")) }
            self = .finished(roots: roots)
        case .finishedRanges:
            let total = try count("range count", each: 16)
            var ranges: [ClosedRange<UInt64>] = []
            for _ in 0..<total {
                let lower = try reader.readUInt64("range start")
                let upper = try reader.readUInt64("range end")
                guard lower <= upper else { throw WireError("range \(lower)...\(upper) is reversed") }
                ranges.append(lower...upper)
            }
            self = .finishedRanges(ranges)
        case .intake:
            let producerLength = Int(try reader.readUInt32("producer length"))
            let producer = try reader.readBytes(producerLength, "producer")
            let sequence = try reader.readUInt64("sequence")
            let accepted = try reader.readUInt32("accepted count")
            let total = try count("dead-lettered count", each: 4)
            var positions: [UInt32] = []
            for _ in 0..<total { positions.append(try reader.readUInt32("dead-lettered position")) }
            self = .intake(IntakeEntry(producer: producer, sequence: sequence, accepted: accepted, deadLettered: positions))
        case nil:
            throw WireError("unknown record kind")
        }
        guard reader.isAtEnd else { throw WireError("\(reader.remaining) bytes after the record") }
    }
}

/// A record on disk: its body's length (4 bytes, big-endian), the length's complement (4 bytes, so a
/// damaged length is told from a record cut short), the body's CRC-32 (4 bytes), then the body.
enum RecordFrame {
    static let headerSize = 12
    /// Larger bodies are refused when writing and taken as damage when reading.
    static let maxBody = 1 << 30

    /// Writes the body in place behind a header left blank, then fills the header in: the body is
    /// not built apart and copied (for a source that cannot be read again it holds the payloads).
    static func append(_ record: JournalRecord, to buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: headerSize))
        record.appendBody(to: &buffer)
        let length = buffer.count - start - headerSize
        precondition(length <= maxBody, "a journal record of \(length) bytes")
        let crc = CRC32.checksum(buffer[(start + headerSize)...])
        func put(_ word: UInt32, at offset: Int) {
            for index in 0..<4 { buffer[start + offset + index] = UInt8(truncatingIfNeeded: word >> (24 - 8 * index)) }
        }
        put(UInt32(length), at: 0)
        put(~UInt32(length), at: 4)
        put(crc, at: 8)
    }

    /// What is found at an offset of a segment.
    enum Scan: Equatable {
        /// A whole, intact record and the offset just after it.
        case record(JournalRecord, next: Int)
        /// The bytes end inside the record's header or body: a write cut short by a crash.
        case truncated
        /// The header or body does not check: `reason` says how.
        case damaged(String)
    }

    static func scan(_ bytes: [UInt8], at offset: Int) -> Scan {
        guard bytes.count - offset >= headerSize else { return .truncated }
        func word(_ at: Int) -> UInt32 {
            (UInt32(bytes[at]) << 24) | (UInt32(bytes[at + 1]) << 16) | (UInt32(bytes[at + 2]) << 8) | UInt32(bytes[at + 3])
        }
        let length = word(offset)
        guard word(offset + 4) == ~length, Int(length) <= maxBody else { return .damaged("the record's length field is damaged") }
        let start = offset + headerSize
        guard bytes.count - start >= Int(length) else { return .truncated }
        let body = Array(bytes[start..<start + Int(length)])
        guard CRC32.checksum(body) == word(offset + 8) else { return .damaged("the record's CRC-32 does not match its bytes") }
        do {
            return .record(try JournalRecord(body: body), next: start + Int(length))
        } catch {
            return .damaged("the record does not decode: \(error)")
        }
    }
}
