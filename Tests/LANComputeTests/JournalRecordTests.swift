// The journal's record codec and frame: every record round-trips, a cut-short frame reads as truncated, damage as damage.

import Testing
@testable import LANCompute

@Suite struct JournalRecordTests {
    static let samples: [JournalRecord] = [
        .run(RunIdentity(epoch: 0xDEAD_BEEF, topologyHash: String(repeating: "ab", count: 32), source: "file in.txt size 12 modified 1.2")),
        .accepted(firstID: 40, payloads: [[], Array("héllo".utf8), [0, 10, 255]]),
        .settled(.inSink, entries: [SettledEntry(id: 1, root: 1), SettledEntry(id: .max, root: 7)], sinkLength: 123_456_789_012),
        .settled(.deadLettered, entries: [SettledEntry(id: 9, root: 3)], sinkLength: nil),
        .settled(.admitted, entries: [], sinkLength: 0),
        .finished(roots: [0, 1, 2, 1 << 40]),
        .finishedRanges([0...9, 20...20, 30...(.max)]),
        .intake(IntakeEntry(producer: Array(0..<16), sequence: 1 << 33, accepted: 255, deadLettered: [0, 7])),
    ]

    @Test func crcMatchesTheStandardCheckValue() {
        #expect(CRC32.checksum("123456789") == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        // Computing in two parts gives the same as in one.
        #expect(CRC32.update(CRC32.checksum("12345"), Array("6789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum("The quick brown fox jumps over the lazy dog") == 0x414F_A339)
    }

    /// Eight bytes a step gives what one bit a step gives, for every length around the step and
    /// every split of the bytes into two updates, from an array, a slice or a collection without
    /// contiguous storage.
    @Test func crcEightBytesAStepMatchesTheBitwiseDefinition() {
        func bitwise(_ bytes: [UInt8]) -> UInt32 {
            var value: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                value ^= UInt32(byte)
                for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
            }
            return ~value
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes: [UInt8] = (0..<67).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        for count in 0...bytes.count {
            let prefix = Array(bytes.prefix(count))
            let expected = bitwise(prefix)
            #expect(CRC32.checksum(prefix) == expected, "\(count) bytes")
            #expect(CRC32.checksum(bytes[1...].prefix(max(0, count - 1))) == bitwise(Array(bytes[1...].prefix(max(0, count - 1)))))
            #expect(CRC32.checksum(prefix.lazy.map { $0 }) == expected, "\(count) bytes, not contiguous")
            for split in stride(from: 0, through: count, by: 5) {
                #expect(CRC32.update(CRC32.checksum(prefix[..<split]), prefix[split...]) == expected, "\(count) bytes split at \(split)")
            }
        }
    }

    @Test func everyRecordRoundTrips() throws {
        for record in Self.samples {
            #expect(try JournalRecord(body: record.body) == record)
            var framed: [UInt8] = []
            RecordFrame.append(record, to: &framed)
            #expect(RecordFrame.scan(framed, at: 0) == .record(record, next: framed.count))
        }
    }

    /// A frame is written in place behind what the buffer already holds: every record of a buffer
    /// that holds them all, one after another, reads back in order, with the header a frame of its
    /// own body would have.
    @Test func framesAppendedToOneBufferReadBackInOrder() {
        var buffer: [UInt8] = [0xAA, 0xBB, 0xCC]
        for record in Self.samples + Self.samples.reversed() { RecordFrame.append(record, to: &buffer) }
        var offset = 3
        for record in Self.samples + Self.samples.reversed() {
            guard case .record(let read, let next) = RecordFrame.scan(buffer, at: offset) else {
                Issue.record("no record at \(offset): \(RecordFrame.scan(buffer, at: offset))")
                return
            }
            #expect(read == record)
            let body = record.body
            var header: [UInt8] = []
            header.appendBigEndian(UInt32(body.count))
            header.appendBigEndian(~UInt32(body.count))
            header.appendBigEndian(CRC32.checksum(body))
            #expect(Array(buffer[offset..<offset + RecordFrame.headerSize]) == header)
            #expect(Array(buffer[(offset + RecordFrame.headerSize)..<next]) == body)
            offset = next
        }
        #expect(offset == buffer.count)
        #expect(buffer.prefix(3) == [0xAA, 0xBB, 0xCC])
    }

    @Test func aFrameCutShortAnywhereReadsAsTruncated() {
        var framed: [UInt8] = []
        RecordFrame.append(Self.samples[1], to: &framed)
        for length in 0..<framed.count {
            #expect(RecordFrame.scan(Array(framed.prefix(length)), at: 0) == .truncated, "cut at \(length) of \(framed.count)")
        }
    }

    @Test func aFlippedByteAnywhereInAFrameIsDamageNotARecord() {
        var framed: [UInt8] = []
        RecordFrame.append(Self.samples[2], to: &framed)
        // A second record after it, so a damaged length cannot pass for a record cut short at the end.
        RecordFrame.append(Self.samples[5], to: &framed)
        let firstLength = RecordFrame.headerSize + Self.samples[2].body.count
        for position in 0..<firstLength {
            var damaged = framed
            damaged[position] ^= 0x40
            guard case .damaged = RecordFrame.scan(damaged, at: 0) else {
                Issue.record("a flipped byte at \(position) was not seen as damage: \(RecordFrame.scan(damaged, at: 0))")
                continue
            }
        }
    }

    @Test func aBodyThatDoesNotDecodeIsRefused() {
        #expect(throws: WireError.self) { try JournalRecord(body: [99]) }
        #expect(throws: WireError.self) { try JournalRecord(body: JournalRecord.finished(roots: [1]).body + [0]) }
        // A count larger than the record could hold is damage, not an allocation.
        #expect(throws: WireError.self) { try JournalRecord(body: [4, 0xFF, 0xFF, 0xFF, 0xFF]) }
    }
}
