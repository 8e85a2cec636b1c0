// The journal's files: append-only segments rolled at a size, a snapshot that replaces the rolled ones, and recovery.

import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When the journal's writes are forced to stable storage (`fsync`). Every policy writes each loop
/// iteration's records to the file before that iteration's effects leave the broker, so a killed
/// broker process loses nothing the journal took; the policies differ on a crash of the machine.
public enum JournalFsyncPolicy: String, Sendable, CaseIterable {
    /// Once per loop iteration that appended, before anything that depends on the records (an
    /// acknowledgement of intake, the next sink commit). Survives power loss.
    case batch
    /// At most every 100 ms: a machine crash may lose the last 100 ms of records (items then redone,
    /// or, for intake, acknowledged lines lost).
    case interval
    /// Never: the operating system writes when it likes (typically within 30 s).
    case never
}

/// Where the journal of a pipeline lives and how it writes.
public struct JournalConfiguration: Sendable, Equatable {
    /// The state directory: segments and snapshots.
    public var directory: String
    public var fsync: JournalFsyncPolicy
    /// Remove any state there and start over.
    public var fresh: Bool
    /// A segment is rolled (and the older ones compacted into a snapshot) once it is this large.
    public var segmentSize: Int

    public init(directory: String, fsync: JournalFsyncPolicy = .batch, fresh: Bool = false, segmentSize: Int = 64 << 20) {
        self.directory = directory
        self.fsync = fsync
        self.fresh = fresh
        self.segmentSize = max(4096, segmentSize)
    }
}

/// What recovery found in a state directory.
struct RecoveredJournal {
    var state = JournalState()
    /// The sequence number the next segment gets.
    var nextSequence: UInt64 = 1
    /// Bytes of a record cut short at the end of the newest segment, dropped.
    var droppedTail = 0
}

/// The segment and snapshot files of one state directory. Used by one thread (the broker's); its
/// `fsync`s may run on the syncer's (``JournalSyncer``), which touches nothing else.
final class JournalStore {
    static let magic: [UInt8] = Array("LCJRNL01".utf8)

    let configuration: JournalConfiguration
    private var descriptor: Int32 = -1
    private var sequence: UInt64
    private var segmentBytes = 0
    private var buffer: [UInt8] = []
    private var unsynced = false
    private var lastSync = ContinuousClock.now
    /// Counts the writes to the segment files: effects that depend on records wait for the write
    /// that carried them to be on disk (see ``releasedGeneration``).
    private(set) var writtenGeneration: UInt64 = 0
    /// Every write up to this one has been forced to disk.
    private(set) var durableGeneration: UInt64 = 0
    /// Runs the `fsync`s, so the broker thread does not wait for the disk; nil: the store syncs inline.
    private var syncer: ActorThread<JournalSyncCommand, JournalSynced>?
    /// The generation the syncer is forcing to disk now.
    private var syncing: UInt64?
    /// Segments rolled and snapshots written, for tests and the log.
    private(set) var rolls = 0

    static func segmentName(_ sequence: UInt64) -> String { "segment-\(padded(sequence)).lcj" }
    static func snapshotName(_ sequence: UInt64) -> String { "snapshot-\(padded(sequence)).lcj" }
    private static func padded(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    /// Opens a new segment after what `recovered` found. With a `context`, the policy's `fsync`s run
    /// on a thread of their own (group commit: ``syncSocket``, ``drainSyncs()``); without one, inline.
    init(configuration: JournalConfiguration, startingAt sequence: UInt64, context: Context? = nil) throws(RuntimeError) {
        self.configuration = configuration
        self.sequence = sequence
        try openSegment()
        if let context, configuration.fsync != .never {
            do { syncer = try JournalSyncer.start(context: context) } catch {
                throw RuntimeError(.journalWrite, "cannot start the journal's sync thread: \(error)")
            }
        }
    }

    /// Readable when the syncer has answered: call ``drainSyncs()``.
    var syncSocket: Socket? { syncer?.socket }

    /// The writes whose dependent effects may leave the broker now: with `batch`, those on disk;
    /// with the other policies, every write (the operating system has them, so a killed process
    /// loses nothing).
    var releasedGeneration: UInt64 { configuration.fsync == .batch ? durableGeneration : writtenGeneration }

    /// Takes the syncer's answers; with `batch`, asks at once for the writes made while it synced.
    func drainSyncs() throws(RuntimeError) {
        guard let syncer else { return }
        do {
            while let answer = try syncer.tryReceive() {
                durableGeneration = max(durableGeneration, answer.generation)
                syncing = nil
            }
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw RuntimeError(.journalWrite, "the journal's sync thread failed: \(error)")
        }
        if configuration.fsync == .batch, writtenGeneration > durableGeneration { try requestSync() }
    }

    /// Forces what was written to disk now, on this thread (the end of a run, before a roll).
    func syncNow() throws(RuntimeError) {
        if !buffer.isEmpty { try writeBuffer() }
        try sync()
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    private func path(_ name: String) -> String { (configuration.directory as NSString).appendingPathComponent(name) }

    private func openSegment() throws(RuntimeError) {
        let file = path(Self.segmentName(sequence))
        descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Self.writeError("cannot create \(file)") }
        segmentBytes = 0
        buffer += Self.magic
        try writeBuffer()
        try sync()
        try Self.syncDirectory(configuration.directory)
    }

    /// Adds a record to the buffer; nothing reaches the file before ``flush(state:now:)``.
    func append(_ record: JournalRecord) {
        RecordFrame.append(record, to: &buffer)
    }

    var hasBuffered: Bool { !buffer.isEmpty }

    /// Writes what was appended (one `write`), syncs as the policy says, and rolls the segment when
    /// it is full, compacting the older ones into a snapshot of `state` (which must include every
    /// record appended so far).
    func flush(state: @autoclosure () -> JournalState, now: ContinuousClock.Instant) throws(RuntimeError) {
        if !buffer.isEmpty {
            try writeBuffer()
            unsynced = true
            if configuration.fsync == .batch { try requestSync() }
        }
        if unsynced, configuration.fsync == .interval, now - lastSync >= .milliseconds(100) { try requestSync() }
        if segmentBytes >= configuration.segmentSize { try roll(state: state()) }
    }

    /// Has the syncer force everything written so far to disk; one sync at a time, so records
    /// written meanwhile go together in the next (group commit). Inline without a syncer.
    private func requestSync() throws(RuntimeError) {
        guard let syncer else { return try sync() }
        guard syncing == nil, writtenGeneration > durableGeneration else { return }
        let copy = dup(descriptor)
        guard copy >= 0 else { throw Self.writeError("cannot duplicate the descriptor of \(path(Self.segmentName(sequence)))") }
        do {
            try syncer.send(JournalSyncCommand(generation: writtenGeneration, descriptor: copy, path: path(Self.segmentName(sequence))))
        } catch {
            close(copy)
            throw RuntimeError(.journalWrite, "cannot reach the journal's sync thread: \(error)")
        }
        syncing = writtenGeneration
        unsynced = false
        lastSync = .now
    }

    private func writeBuffer() throws(RuntimeError) {
        var written = 0
        let total = buffer.count
        while written < total {
            let result = buffer.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, total - written) }
            if result < 0 {
                if errno == EINTR { continue }
                throw Self.writeError("cannot write \(path(Self.segmentName(sequence)))")
            }
            written += result
        }
        segmentBytes += total
        buffer.removeAll(keepingCapacity: true)
        writtenGeneration += 1
    }

    private func sync() throws(RuntimeError) {
        guard descriptor >= 0 else { return }
        if fsync(descriptor) != 0 { throw Self.writeError("cannot sync \(path(Self.segmentName(sequence)))") }
        durableGeneration = writtenGeneration
        unsynced = false
        lastSync = .now
    }

    /// Closes the full segment, starts the next, writes a snapshot of `state` in place of every
    /// segment before the new one, and removes those. A crash at any step leaves either the old
    /// segments or the new snapshot complete: the snapshot only exists once renamed into place.
    func roll(state: JournalState) throws(RuntimeError) {
        try sync()
        close(descriptor)
        descriptor = -1
        let previous = sequence
        sequence += 1
        try openSegment()
        var snapshot = Self.magic
        for record in state.snapshotRecords { RecordFrame.append(record, to: &snapshot) }
        let temporary = path(Self.snapshotName(sequence) + ".tmp")
        let final = path(Self.snapshotName(sequence))
        let file = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw Self.writeError("cannot create \(temporary)") }
        defer { close(file) }
        var written = 0
        while written < snapshot.count {
            let result = snapshot.withUnsafeBytes { write(file, $0.baseAddress! + written, snapshot.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                throw Self.writeError("cannot write \(temporary)")
            }
            written += result
        }
        if fsync(file) != 0 { throw Self.writeError("cannot sync \(temporary)") }
        if rename(temporary, final) != 0 { throw Self.writeError("cannot rename \(temporary)") }
        try Self.syncDirectory(configuration.directory)
        for (kind, number) in Self.files(in: configuration.directory) where number <= previous || (kind == .snapshot && number < sequence) {
            unlink(path(kind == .segment ? Self.segmentName(number) : Self.snapshotName(number)))
        }
        rolls += 1
    }

    /// Writes what is buffered, syncs, and closes the segment.
    func finish() throws(RuntimeError) {
        if !buffer.isEmpty { try writeBuffer() }
        try sync()
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        syncer?.stop()
        syncer = nil
    }

    // MARK: Recovery

    enum FileKind { case segment, snapshot }

    /// The journal files of a directory with their sequence numbers, in ascending order.
    static func files(in directory: String) -> [(FileKind, UInt64)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [(FileKind, UInt64)] = []
        for name in names where name.hasSuffix(".lcj") {
            let stem = name.dropLast(4)
            if stem.hasPrefix("segment-"), let number = UInt64(stem.dropFirst(8)) { found.append((.segment, number)) }
            if stem.hasPrefix("snapshot-"), let number = UInt64(stem.dropFirst(9)) { found.append((.snapshot, number)) }
        }
        return found.sorted { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 == .snapshot) }
    }

    /// Reads the newest snapshot and every segment after it. A record cut short at the very end of
    /// the newest segment (the write a crash interrupted) is dropped; damage anywhere else is an
    /// LC2061 error naming the file and offset, and nothing is guessed.
    static func recover(directory: String) throws(RuntimeError) -> RecoveredJournal {
        var recovered = RecoveredJournal()
        let files = files(in: directory)
        let snapshot = files.last { $0.0 == .snapshot }?.1
        var toRead: [(FileKind, UInt64)] = []
        if let snapshot { toRead.append((.snapshot, snapshot)) }
        toRead += files.filter { $0.0 == .segment && $0.1 >= (snapshot ?? 0) }
        let newestSegment = toRead.last { $0.0 == .segment }?.1
        for (kind, number) in toRead {
            let name = kind == .segment ? segmentName(number) : snapshotName(number)
            let file = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: file) else {
                throw RuntimeError(.journalCorrupt, "cannot read \(file)")
            }
            let bytes = [UInt8](data)
            let isTail = kind == .segment && number == newestSegment
            if bytes.count < magic.count {
                // A segment created by a crash before its header was written holds nothing.
                guard isTail, Array(magic.prefix(bytes.count)) == bytes else {
                    throw RuntimeError(.journalCorrupt, "\(file) at offset 0: not a journal file (too short for its header)")
                }
                recovered.droppedTail += bytes.count
                unlink(file)
                continue
            }
            guard Array(bytes.prefix(magic.count)) == magic else {
                throw RuntimeError(.journalCorrupt, "\(file) at offset 0: not a journal file (its header is not LCJRNL01)")
            }
            var offset = magic.count
            scanning: while offset < bytes.count {
                switch RecordFrame.scan(bytes, at: offset) {
                case .record(let record, let next):
                    recovered.state.apply(record)
                    offset = next
                case .truncated where isTail:
                    recovered.droppedTail = bytes.count - offset
                    break scanning
                case .damaged where isTail && bytes[offset...].allSatisfy({ $0 == 0 }):
                    // A file system that extended the file but never wrote the record leaves zeros.
                    recovered.droppedTail = bytes.count - offset
                    break scanning
                case .truncated:
                    throw RuntimeError(.journalCorrupt, "\(file) at offset \(offset): the file ends inside a record, and it is not the newest segment")
                case .damaged(let reason):
                    throw RuntimeError(.journalCorrupt, "\(file) at offset \(offset): \(reason)")
                }
            }
            if recovered.droppedTail > 0 && isTail {
                // Cut the torn record off now: once a newer segment exists, this one is no longer the
                // tail, and a record cut short there would read as damage.
                if truncate(file, off_t(offset)) != 0 { throw writeError("cannot truncate the torn end of \(file)") }
            }
            recovered.nextSequence = max(recovered.nextSequence, number + 1)
        }
        return recovered
    }

    /// Makes a file's creation or rename durable: its directory entry is data too.
    static func syncDirectory(_ directory: String) throws(RuntimeError) {
        let descriptor = open(directory, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw writeError("cannot open \(directory)") }
        defer { close(descriptor) }
        _ = fsync(descriptor)
    }

    static func writeError(_ what: String) -> RuntimeError {
        RuntimeError(.journalWrite, "\(what): \(String(cString: strerror(errno)))")
    }
}
