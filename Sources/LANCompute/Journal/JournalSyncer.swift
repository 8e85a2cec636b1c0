// The journal's fsync on a thread of its own: the broker thread writes records and goes on
// dispatching; what must wait for the disk waits for this actor's answer (group commit).

import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// To the syncer: force a segment to disk. `descriptor` is a duplicate the syncer owns and closes,
/// so the broker may close or roll its own descriptor while the sync runs.
struct JournalSyncCommand: ActorMessage, Equatable {
    /// Every record written before this generation was taken is on disk once the answer comes.
    var generation: UInt64
    var descriptor: Int32
    /// The segment's file, for the error message.
    var path: String

    var frames: [[UInt8]] {
        var head: [UInt8] = []
        head.appendBigEndian(generation)
        head.appendBigEndian(descriptor)
        return [head, Array(path.utf8)]
    }

    init(generation: UInt64, descriptor: Int32, path: String) {
        self.generation = generation
        self.descriptor = descriptor
        self.path = path
    }

    init(frames: [[UInt8]]) throws {
        guard frames.count == 2 else { throw ActorError.unexpectedMessage("a journal sync command has 2 frames, not \(frames.count)") }
        var reader = ByteReader(frames[0])
        generation = try reader.readUInt64("generation")
        descriptor = Int32(bitPattern: try reader.readUInt32("descriptor"))
        path = String(decoding: frames[1], as: UTF8.self)
    }
}

/// From the syncer: records up to this generation are on disk.
struct JournalSynced: ActorMessage, Equatable {
    var generation: UInt64

    var frames: [[UInt8]] {
        var bytes: [UInt8] = []
        bytes.appendBigEndian(generation)
        return [bytes]
    }

    init(generation: UInt64) { self.generation = generation }

    init(frames: [[UInt8]]) throws {
        guard frames.count == 1 else { throw ActorError.unexpectedMessage("a journal sync answer has 1 frame, not \(frames.count)") }
        var reader = ByteReader(frames[0])
        generation = try reader.readUInt64("generation")
    }
}

/// Runs each `fsync` the journal asks for, one at a time, and answers when it is done. A failed
/// `fsync` ends the actor with LC2060, which the broker's next receive throws: the run stops.
enum JournalSyncer {
    static func start(context: Context) throws -> ActorThread<JournalSyncCommand, JournalSynced> {
        try ActorThread(name: "lancompute-journal-sync", context: context) { pipe in
            try pipe.signalReady()
            while true {
                switch try pipe.receive() {
                case .terminate:
                    return
                case .command(let command):
                    let result = fsync(command.descriptor)
                    let failure = errno
                    close(command.descriptor)
                    guard result == 0 else {
                        throw RuntimeError(.journalWrite, "cannot sync \(command.path): \(String(cString: strerror(failure)))")
                    }
                    try pipe.send(JournalSynced(generation: command.generation))
                }
            }
        }
    }
}
