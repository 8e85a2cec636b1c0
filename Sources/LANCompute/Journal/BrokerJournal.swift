// The broker's journal: a consumer of the core's actions and of the shell's intake, and what a resumed run starts from.

import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the aggregator needs from the journal to keep the sink and the journal in agreement.
struct SinkRecovery: Sendable, Equatable {
    /// Resuming: cut the sink (or, for an aggregate, its spool) back to this many bytes, then append.
    /// Nil: a fresh run, the sink starts empty.
    var resumeLength: UInt64?
    /// For aggregate sinks: the file in the state directory where admitted outputs are kept as they
    /// arrive (4-byte big-endian length, then the bytes), so the aggregate can be rebuilt on resume.
    var spoolPath: String?
    /// Sync the sink (or spool) to disk before each acknowledgement (`--fsync batch`), so a journaled
    /// sink length is never longer than what survives a machine crash.
    var syncBeforeAck: Bool
}

/// The journal of one broker run. Lives on the broker thread; it appends while the loop runs and
/// reads only when it opens (recovery).
final class BrokerJournal {
    let configuration: JournalConfiguration
    private let store: JournalStore
    /// The state as of every record appended so far (a snapshot is written from it).
    private(set) var state: JournalState
    /// The state the previous runs left, before this run appended anything.
    let recovered: JournalState
    /// Bytes of a torn last record dropped at recovery.
    let droppedTail: Int
    /// The sink cannot be cut back (stdout, push): an item counts as settled once admitted, and
    /// the admission is held back until that is journaled. See Docs/architecture.md.
    let settlesOnAdmission: Bool

    /// An exclusive `flock` on the directory's lock file, held for the run: two brokers on one journal would interleave it.
    private var lock: Int32 = -1
    static let lockName = "lock"

    private var inSink: [SettledEntry] = []
    private var deadLettered: [SettledEntry] = []
    private var admitted: [SettledEntry] = []
    private var finishedRoots: [UInt64] = []
    private var sinkLength: UInt64?

    /// Whether a previous run left state this run resumes.
    var isResume: Bool { recovered.runs > 0 }

    /// Opens (creating, or with `fresh` first removing) the state directory, recovers what is there,
    /// checks it belongs to this pipeline, and records this run.
    /// With a `context`, `fsync`s run on a thread of their own and what depends on them waits for
    /// ``releasedGeneration`` (the broker's loop); without one, each ``flush(now:)`` syncs inline.
    init(configuration: JournalConfiguration, identity: RunIdentity, settlesOnAdmission: Bool, context: Context? = nil) throws(RuntimeError) {
        self.configuration = configuration
        self.settlesOnAdmission = settlesOnAdmission
        let manager = FileManager.default
        do { try manager.createDirectory(atPath: configuration.directory, withIntermediateDirectories: true) } catch {
            throw RuntimeError(.journalWrite, "cannot create the state directory \(configuration.directory): \(error.localizedDescription)")
        }
        let lock = try Self.lock(configuration.directory)
        let found: RecoveredJournal
        do {
            found = try Self.recover(configuration: configuration, identity: identity)
        } catch {
            close(lock)
            throw error
        }
        self.lock = lock
        recovered = found.state
        droppedTail = found.droppedTail
        state = found.state
        do { store = try JournalStore(configuration: configuration, startingAt: found.nextSequence, context: context) } catch {
            close(lock)
            throw error
        }
        append(.run(identity))
        try flush(now: .now)
    }

    /// Recovers the directory (emptied first with `fresh`) and checks it belongs to `identity`'s pipeline.
    private static func recover(configuration: JournalConfiguration, identity: RunIdentity) throws(RuntimeError) -> RecoveredJournal {
        let manager = FileManager.default
        if configuration.fresh {
            for name in (try? manager.contentsOfDirectory(atPath: configuration.directory)) ?? [] where name != lockName {
                do { try manager.removeItem(atPath: (configuration.directory as NSString).appendingPathComponent(name)) } catch {
                    throw RuntimeError(.journalWrite, "cannot remove \(name) from the state directory \(configuration.directory) (--fresh): \(error.localizedDescription)")
                }
            }
        }
        let found = try JournalStore.recover(directory: configuration.directory)
        if let earlier = found.state.identity {
            var differences: [String] = []
            if earlier.topologyHash != identity.topologyHash { differences.append("the topology's stages, source or sink changed") }
            if earlier.source != identity.source { differences.append("the source changed (was \(earlier.source), now \(identity.source))") }
            if !differences.isEmpty {
                throw RuntimeError(.journalMismatch, "the state in \(configuration.directory) was left by another run: \(differences.joined(separator: "; ")); pass --fresh to start over, or --state DIR to keep it")
            }
        }
        return found
    }

    /// What the aggregator needs for `sink`.
    func sinkRecovery(for sink: SinkSpec) -> SinkRecovery {
        let spool = sink.aggregate == .none ? nil : (configuration.directory as NSString).appendingPathComponent("aggregate-spool.bin")
        return SinkRecovery(resumeLength: isResume ? (recovered.sinkLength ?? 0) : nil, spoolPath: spool,
                            syncBeforeAck: configuration.fsync == .batch)
    }

    private func append(_ record: JournalRecord) {
        store.append(record)
        state.apply(record)
    }

    /// Source items the shell accepted whose payloads cannot be read again: journaled with the
    /// iteration's other records, before their intake is acknowledged.
    func accepted(firstID: UInt64, payloads: [[UInt8]]) {
        guard !payloads.isEmpty else { return }
        append(.accepted(firstID: firstID, payloads: payloads))
    }

    /// An intake batch was accepted: journaled with its items, before its acknowledgement.
    func intakeAccepted(_ entry: IntakeEntry) { append(.intake(entry)) }

    /// The aggregator acknowledged outputs, the sink being `length` bytes once they were flushed.
    func sinkCommitted(length: UInt64) { sinkLength = length }

    /// Takes what the journal records from one of the core's actions.
    func consume(_ action: BrokerAction) {
        switch action {
        case .itemsSettled(let settlement, let entries):
            switch settlement {
            case .inSink: if !settlesOnAdmission { inSink += entries }
            case .admitted: if settlesOnAdmission { admitted += entries }
            case .deadLettered: deadLettered += entries
            }
        case .sourceItemsFinished(let roots):
            finishedRoots += roots
        default:
            break
        }
    }

    /// Whether admissions must wait for ``flush(now:)`` (the sink cannot be cut back on resume).
    var holdsAdmissions: Bool { settlesOnAdmission }

    /// Appends the records gathered this loop iteration (settled items before the source items they
    /// finish, so a torn tail can drop a finish but never keep it without its items) and writes them.
    func flush(now: ContinuousClock.Instant) throws(RuntimeError) {
        if !deadLettered.isEmpty {
            append(.settled(.deadLettered, entries: deadLettered, sinkLength: nil))
            deadLettered.removeAll(keepingCapacity: true)
        }
        if !admitted.isEmpty {
            append(.settled(.admitted, entries: admitted, sinkLength: nil))
            admitted.removeAll(keepingCapacity: true)
        }
        if !inSink.isEmpty || sinkLength != nil {
            append(.settled(.inSink, entries: inSink, sinkLength: sinkLength))
            inSink.removeAll(keepingCapacity: true)
            sinkLength = nil
        }
        if !finishedRoots.isEmpty {
            append(.finished(roots: finishedRoots))
            finishedRoots.removeAll(keepingCapacity: true)
        }
        try store.flush(state: state, now: now)
    }

    /// The write that carried the records appended before the last ``flush(now:)``.
    var writtenGeneration: UInt64 { store.writtenGeneration }
    /// Effects waiting for a write up to this one may leave the broker (with `batch`: it is on disk).
    var releasedGeneration: UInt64 { store.releasedGeneration }
    /// Readable when an `fsync` finished: call ``drainSyncs()``.
    var syncSocket: Socket? { store.syncSocket }
    func drainSyncs() throws(RuntimeError) { try store.drainSyncs() }

    /// Appends and writes what was gathered, then forces it to disk on this thread: afterwards every
    /// held effect may leave.
    func flushAndSync(now: ContinuousClock.Instant) throws(RuntimeError) {
        try flush(now: now)
        try store.syncNow()
    }

    /// Segments rolled (and compacted) during this run.
    var rolls: Int { store.rolls }

    /// Flushes and closes the segment; with `remove`, the run is complete and its state is deleted,
    /// so the next run of the same command starts afresh.
    func finish(removingState remove: Bool) throws(RuntimeError) {
        try flush(now: .now)
        try store.finish()
        if remove { try? FileManager.default.removeItem(atPath: configuration.directory) }
        unlock()
    }

    deinit { unlock() }

    private func unlock() {
        if lock >= 0 { close(lock) }
        lock = -1
    }

    private static func lock(_ directory: String) throws(RuntimeError) -> Int32 {
        let path = (directory as NSString).appendingPathComponent(lockName)
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw JournalStore.writeError("cannot open \(path)") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw RuntimeError(.journalWrite, "the state directory \(directory) is in use by another broker; stop it, or give this run its own with --state DIR")
        }
        return descriptor
    }

    // MARK: Identity

    /// The identity of a run of `topology` with a new `epoch`.
    static func identity(of topology: Topology, epoch: UInt32) -> RunIdentity {
        RunIdentity(epoch: epoch, topologyHash: topologyHash(topology), source: sourceIdentity(topology.source))
    }

    /// What item ids depend on: the stages (names, order, links, handlers), the chains, the source and the sink.
    static func topologyHash(_ topology: Topology) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.userInfo[StageSpec.hashingKey] = true
        var bytes: [UInt8] = []
        bytes += (try? encoder.encode(topology.stages)).map(Array.init) ?? []
        // A chain's outputs take ids derived from its head's item, not from each member's: a journal of
        // the same stages run without chains (by an older broker) is another run. Hashed only when there
        // are chains, so a topology without any keeps the hash it always had.
        let chains = ChainPlan(topology).chains
        if !chains.isEmpty { bytes += (try? encoder.encode(chains)).map(Array.init) ?? [] }
        bytes += (try? encoder.encode(topology.source)).map(Array.init) ?? []
        bytes += (try? encoder.encode(topology.sink)).map(Array.init) ?? []
        return SHA256.hexDigest(bytes)
    }

    /// A file source is its path, size and modification time: a file that changed would give the
    /// same ids to other lines.
    static func sourceIdentity(_ source: SourceSpec) -> String {
        switch source.kind {
        case .file(let path):
            var info = stat()
            guard stat(path, &info) == 0 else { return "file \(path) (missing)" }
            #if canImport(Darwin)
            let modified = info.st_mtimespec
            #else
            let modified = info.st_mtim
            #endif
            return "file \(path) size \(info.st_size) modified \(modified.tv_sec).\(modified.tv_nsec)"
        case .stdin: return "stdin"
        case .pull(let endpoint): return "pull \(endpoint)"
        // The letters' cycle is named: a state left by a build that wrote other letters is another run.
        case .generate(let count, let size): return "generate \(count) x \(size), letters from a cycle of \(SourceReader.letterCycleLength)"
        }
    }

    /// Sources whose items are journaled with their payloads, since they cannot be read again.
    static func journalsPayloads(_ source: SourceSpec) -> Bool {
        switch source.kind {
        case .pull, .stdin: true
        case .file, .generate: false
        }
    }
}
