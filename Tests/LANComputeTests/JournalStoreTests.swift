// The journal's files: write and recover, a torn last record dropped, damage reported with file and offset, rolling and compaction.

import Foundation
import Testing
@testable import LANCompute
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(1))) struct JournalStoreTests {
    /// A fresh state directory under /tmp, removed by the caller.
    static func directory() -> String {
        var template = Array("/tmp/lc-journal-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    static let identity = RunIdentity(epoch: 7, topologyHash: "hash", source: "file in.txt")

    /// Writes `batches` of finished ids, one flush each, and closes the journal.
    static func write(_ directory: String, batches: [[UInt64]], segmentSize: Int = 1 << 20) throws -> BrokerJournal {
        let journal = try BrokerJournal(configuration: JournalConfiguration(directory: directory, fsync: .never, segmentSize: segmentSize),
                                        identity: identity, settlesOnAdmission: false)
        for batch in batches {
            for id in batch {
                journal.consume(.itemsSettled(.inSink, entries: [SettledEntry(id: id, root: id)]))
                journal.consume(.sourceItemsFinished(roots: [id]))
            }
            journal.sinkCommitted(length: (batch.last ?? 0) * 10)
            try journal.flush(now: .now)
        }
        try journal.finish(removingState: false)
        return journal
    }

    static func segments(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("segment-") }.sorted()
    }

    /// With `batch` and a sync thread, a write is released only once the thread says it is on disk;
    /// records written while a sync runs go together in the next one (group commit).
    @Test func batchReleasesAWriteOnlyWhenTheSyncThreadHasForcedIt() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let context = try Context()
        let journal = try BrokerJournal(configuration: JournalConfiguration(directory: directory, fsync: .batch),
                                        identity: Self.identity, settlesOnAdmission: false, context: context)
        let socket = try #require(journal.syncSocket)
        func waitForRelease(of generation: UInt64) throws {
            let poller = Poller()
            let index = poller.add(socket)
            for _ in 0..<500 where journal.releasedGeneration < generation {
                _ = try poller.poll(timeout: .milliseconds(20))
                if poller.isReadable(index) { try journal.drainSyncs() }
            }
        }
        try waitForRelease(of: journal.writtenGeneration)
        for round in 0..<3 {
            journal.consume(.itemsSettled(.inSink, entries: [SettledEntry(id: UInt64(round), root: UInt64(round))]))
            journal.consume(.sourceItemsFinished(roots: [UInt64(round)]))
            let before = journal.writtenGeneration
            try journal.flush(now: .now)
            let written = journal.writtenGeneration
            #expect(written == before + 1)
            // The flush returned before the disk was asked to answer: not released yet.
            #expect(journal.releasedGeneration < written)
            try waitForRelease(of: written)
            #expect(journal.releasedGeneration == written)
        }
        // Two writes while the first sync may still run: both end up released.
        journal.consume(.sourceItemsFinished(roots: [10]))
        try journal.flush(now: .now)
        journal.consume(.sourceItemsFinished(roots: [11]))
        try journal.flush(now: .now)
        try waitForRelease(of: journal.writtenGeneration)
        #expect(journal.releasedGeneration == journal.writtenGeneration)
        try journal.finish(removingState: false)
        #expect(try JournalStore.recover(directory: directory).state.finished.ranges == [0...2, 10...11])
    }

    /// Without `batch`, a write is released as soon as it is written: nothing waits for the disk.
    @Test func intervalAndNeverReleaseWhatIsWritten() throws {
        for policy in [JournalFsyncPolicy.interval, .never] {
            let directory = Self.directory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let journal = try BrokerJournal(configuration: JournalConfiguration(directory: directory, fsync: policy),
                                            identity: Self.identity, settlesOnAdmission: false, context: try Context())
            journal.consume(.sourceItemsFinished(roots: [1]))
            try journal.flush(now: .now)
            #expect(journal.releasedGeneration == journal.writtenGeneration, "\(policy)")
            #expect((journal.syncSocket == nil) == (policy == .never), "\(policy)")
            try journal.finish(removingState: false)
        }
    }

    @Test func whatWasWrittenIsRecovered() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try Self.write(directory, batches: [[0, 1, 2], [4, 3], [5]])
        let recovered = try JournalStore.recover(directory: directory)
        #expect(recovered.state.finished.ranges == [0...5])
        #expect(recovered.state.sinkLength == 50)
        #expect(recovered.state.identity == Self.identity)
        #expect(recovered.droppedTail == 0)
    }

    @Test func aTornLastRecordIsDroppedAndCutOff() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try Self.write(directory, batches: [[0, 1], [2, 3]])
        let segment = (directory as NSString).appendingPathComponent(Self.segments(directory).last!)
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        #expect(truncate(segment, off_t(size - 3)) == 0)
        let recovered = try JournalStore.recover(directory: directory)
        // The last record (finished 2, 3) is gone; its items settled (the record before it) stay.
        #expect(recovered.state.finished.ranges == [0...1])
        #expect(recovered.state.settledIDs == [2, 3])
        #expect(recovered.state.sinkLength == 30)
        #expect(recovered.droppedTail > 0)
        // The torn end was cut off, so once a newer segment exists this one still reads cleanly.
        _ = try Self.write(directory, batches: [[9]])
        #expect(try JournalStore.recover(directory: directory).state.finished.ranges == [0...1, 9...9])
    }

    @Test func aDamagedByteInTheMiddleIsReportedWithFileAndOffset() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try Self.write(directory, batches: (0..<20).map { [UInt64($0)] })
        let name = Self.segments(directory).last!
        let segment = (directory as NSString).appendingPathComponent(name)
        var bytes = [UInt8](FileManager.default.contents(atPath: segment)!)
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        do {
            _ = try JournalStore.recover(directory: directory)
            Issue.record("a damaged segment was read")
        } catch {
            #expect(error.code == .journalCorrupt)
            #expect(error.message.contains(name) && error.message.contains("at offset "), "\(error)")
        }
    }

    @Test func aJournalOfAnotherPipelineIsRefused() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try Self.write(directory, batches: [[0]])
        var other = Self.identity
        other.topologyHash = "other"
        #expect(throws: RuntimeError.self) {
            _ = try BrokerJournal(configuration: JournalConfiguration(directory: directory), identity: other, settlesOnAdmission: false)
        }
        // --fresh removes it instead.
        let fresh = try BrokerJournal(configuration: JournalConfiguration(directory: directory, fresh: true), identity: other, settlesOnAdmission: false)
        #expect(!fresh.isResume)
        try fresh.finish(removingState: false)
    }

    @Test func twoBrokersCannotShareAStateDirectory() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try BrokerJournal(configuration: JournalConfiguration(directory: directory), identity: Self.identity, settlesOnAdmission: false)
        do {
            _ = try BrokerJournal(configuration: JournalConfiguration(directory: directory), identity: Self.identity, settlesOnAdmission: false)
            Issue.record("a second journal opened a directory in use")
        } catch {
            #expect(error.code == .journalWrite)
            #expect(error.message.contains("in use by another broker"))
        }
        try first.finish(removingState: false)
        let second = try BrokerJournal(configuration: JournalConfiguration(directory: directory), identity: Self.identity, settlesOnAdmission: false)
        #expect(second.isResume)
        try second.finish(removingState: true)
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    @Test func rollingCompactsOldSegmentsIntoASnapshot() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // 400 batches of 50 ids: ~500 KB of records in 4 KiB segments.
        let batches = (0..<400).map { batch in (0..<50).map { UInt64(batch * 50 + $0) } }
        let journal = try Self.write(directory, batches: batches, segmentSize: 4096)
        #expect(journal.rolls > 50)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(files.filter { $0.hasPrefix("snapshot-") }.count == 1, "\(files)")
        #expect(Self.segments(directory).count <= 2, "\(files)")
        let total = try files.reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: (directory as NSString).appendingPathComponent($1))[.size] as! Int) }
        #expect(total < 16_384, "the journal of 20,000 finished items takes \(total) bytes")
        let recovered = try JournalStore.recover(directory: directory)
        #expect(recovered.state.finished.ranges == [0...19_999])
        #expect(recovered.state.sinkLength == 199_990)
        #expect(recovered.state.settledIDs.isEmpty)
    }

    @Test func unfinishedPayloadsSurviveCompaction() throws {
        let directory = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try BrokerJournal(configuration: JournalConfiguration(directory: directory, fsync: .batch, segmentSize: 4096),
                                        identity: Self.identity, settlesOnAdmission: true)
        for batch in 0..<200 {
            let first = UInt64(batch * 10)
            journal.accepted(firstID: first, payloads: (0..<10).map { Array("item \(first + UInt64($0))".utf8) })
            // Every id but those ending in 7 finishes.
            for id in first..<first + 10 where id % 10 != 7 {
                journal.consume(.itemsSettled(.admitted, entries: [SettledEntry(id: id, root: id)]))
                journal.consume(.sourceItemsFinished(roots: [id]))
            }
            try journal.flush(now: .now)
        }
        try journal.finish(removingState: false)
        #expect(journal.rolls > 5)
        let state = try JournalStore.recover(directory: directory).state
        let expected: [UInt64] = (0..<UInt64(200)).map { $0 * 10 + 7 }
        #expect(state.unfinishedPayloads.keys.sorted() == expected)
        #expect(state.unfinishedPayloads[1997] == Array("item 1997".utf8))
        #expect(state.nextSourceID == 2000)
    }
}
