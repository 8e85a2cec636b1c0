// The aggregator actor: PULLs final outputs fanned in from workers, writes those the broker admits to the sink, acks.

import Foundation
import Logging
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the broker thread tells the aggregator actor.
enum AggregatorCommand: ActorMessage, Equatable {
    /// Outputs of final-stage items that reached the broker in a REPLY instead of the PULL (plain MDP
    /// workers); the broker admitted them already.
    case outputs(ReplyBatch)
    /// The answer to ``AggregatorEvent/offered(_:)``: write the admitted items' outputs, drop the refused.
    case admission(admitted: [UInt64], refused: [UInt64])
    /// Write the final aggregate, report the last acks and the totals, and end.
    case finish

    private enum Kind: UInt8 {
        case outputs = 1
        case finish = 2
        case admission = 3
    }

    var frames: [[UInt8]] {
        switch self {
        case .outputs(let batch): [[Kind.outputs.rawValue]] + batch.frames
        case .admission(let admitted, let refused): [[Kind.admission.rawValue], idFrame(admitted), idFrame(refused)]
        case .finish: [[Kind.finish.rawValue]]
        }
    }

    init(frames: [[UInt8]]) throws {
        var reader = ByteReader(frames.first ?? [])
        switch Kind(rawValue: try reader.readUInt8("aggregator command kind")) {
        case .outputs: self = .outputs(try ReplyBatch(frames: Array(frames.dropFirst())))
        case .admission:
            guard frames.count == 3 else { throw WireError("an admission has 3 frames, not \(frames.count)") }
            self = .admission(admitted: try ids(in: frames[1], "admitted id"), refused: try ids(in: frames[2], "refused id"))
        case .finish: self = .finish
        case nil: throw WireError("unknown aggregator command")
        }
    }
}

/// Item ids as one frame of 8 bytes each, big-endian.
private func idFrame(_ ids: [UInt64]) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(ids.count * 8)
    for id in ids { bytes.appendBigEndian(id) }
    return bytes
}

private func ids(in frame: [UInt8], _ what: String) throws(WireError) -> [UInt64] {
    guard frame.count % 8 == 0 else { throw WireError("\(what)s of \(frame.count) bytes, not a multiple of 8") }
    var reader = ByteReader(frame)
    var ids: [UInt64] = []
    ids.reserveCapacity(frame.count / 8)
    while !reader.isAtEnd { ids.append(try reader.readUInt64(what)) }
    return ids
}

/// What the aggregator actor tells the broker thread.
enum AggregatorEvent: ActorMessage, Equatable {
    /// The ready report: the endpoint the PULL actually bound (port resolved).
    case bound(String)
    /// These items' outputs are in the sink (flushed): the broker may forget them.
    case acknowledged([UInt64])
    /// Workers PUSHed outputs for these items: may they be written? (The broker answers with an admission.)
    case offered([OfferedOutput])
    /// The sink is complete: outputs written, distinct items seen.
    case finished(outputs: UInt64, items: UInt64)
    /// As `acknowledged`, with the sink's (or aggregate spool's) length once these outputs were flushed:
    /// one message, so the journal records the items and the length that holds them together.
    case committed([UInt64], sinkLength: UInt64)

    private enum Kind: UInt8 {
        case bound = 1
        case acknowledged = 2
        case finished = 3
        case offered = 4
        case committed = 5
    }

    var frames: [[UInt8]] {
        switch self {
        case .bound(let endpoint):
            return [[Kind.bound.rawValue], Array(endpoint.utf8)]
        case .acknowledged(let ids):
            return [[Kind.acknowledged.rawValue], idFrame(ids)]
        case .committed(let ids, let sinkLength):
            var kind = [Kind.committed.rawValue]
            kind.appendBigEndian(sinkLength)
            return [kind, idFrame(ids)]
        case .offered(let offers):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(offers.count * 15)
            for offer in offers {
                bytes.appendBigEndian(offer.id)
                bytes.appendBigEndian(offer.epoch)
                bytes.appendBigEndian(offer.attempt)
                // The sender's key: 0 or 40 bytes of Z85, so one length byte.
                let sender = Array(offer.sender.utf8.prefix(255))
                bytes.append(UInt8(sender.count))
                bytes += sender
            }
            return [[Kind.offered.rawValue], bytes]
        case .finished(let outputs, let items):
            var bytes: [UInt8] = []
            bytes.appendBigEndian(outputs)
            bytes.appendBigEndian(items)
            return [[Kind.finished.rawValue], bytes]
        }
    }

    init(frames: [[UInt8]]) throws {
        guard frames.count == 2 else { throw WireError("an aggregator event has 2 frames, not \(frames.count)") }
        var kind = ByteReader(frames[0])
        var body = ByteReader(frames[1])
        switch Kind(rawValue: try kind.readUInt8("aggregator event kind")) {
        case .bound:
            self = .bound(String(decoding: frames[1], as: UTF8.self))
        case .acknowledged:
            self = .acknowledged(try ids(in: frames[1], "acknowledged id"))
        case .committed:
            self = .committed(try ids(in: frames[1], "acknowledged id"), sinkLength: try kind.readUInt64("sink length"))
        case .offered:
            var offers: [OfferedOutput] = []
            while !body.isAtEnd {
                var offer = OfferedOutput(id: try body.readUInt64("offered id"), epoch: try body.readUInt32("offered epoch"),
                                          attempt: try body.readUInt16("offered attempt"))
                let length = Int(try body.readUInt8("offer sender length"))
                offer.sender = String(decoding: try body.readBytes(length, "offer sender"), as: UTF8.self)
                offers.append(offer)
            }
            self = .offered(offers)
        case .finished:
            self = .finished(outputs: try body.readUInt64("outputs written"), items: try body.readUInt64("items seen"))
        case nil:
            throw WireError("unknown aggregator event")
        }
    }
}

/// The aggregator actor: owns the PULL socket workers PUSH final outputs to, and the sink.
struct Aggregator: Sendable {
    let sink: SinkSpec
    let bindEndpoint: String
    let maxFrameSize: Int64
    /// A second endpoint for workers in the same process, when set.
    let inprocEndpoint: String?
    let sockets: SocketFactory
    let logger: Logger
    /// The run's epoch: outputs of another run (held by a worker across a broker restart) are refused.
    let epoch: UInt32
    /// With a journal: how to resume the sink and report its length with each ack (Journal/SinkFiles.swift).
    var recovery: SinkRecovery? = nil

    /// Starts the actor; returns once the PULL is bound and the sink open (the bound endpoint is
    /// the `readyReport`), or throws the ``AggregatorFailure`` that stopped it.
    func start() throws -> ActorThread<AggregatorCommand, AggregatorEvent> {
        try ActorThread(name: "lancompute-aggregator", context: sockets.context) { pipe in try self.run(pipe) }
    }

    private func run(_ pipe: ActorPipe<AggregatorCommand, AggregatorEvent>) throws {
        let profile = SocketProfile.aggregator(maxMessageSize: maxFrameSize)
        let pull = try sockets.socket(profile)
        do {
            try sockets.bind(pull, as: profile, to: bindEndpoint)
        } catch .failed(let error) {
            throw AggregatorFailure("LC2002: cannot bind the aggregator endpoint \(bindEndpoint): \(error.code.message) (\(error.code.cName)); choose another with --aggregator")
        } catch {
            throw AggregatorFailure(error.description)
        }
        // Read back before the inproc bind, which would become the "last" endpoint.
        let bound = try pull.lastEndpoint
        if let inprocEndpoint { try pull.bind(inprocEndpoint) }
        // Before the sink is opened and ready is sent, so a key that cannot be compiled fails the run
        // instead of writing an empty aggregate.
        var aggregate: SinkAggregator
        do { aggregate = try SinkAggregator(sink) } catch { throw AggregatorFailure("LC1055: \(error.message)") }
        // Resuming an aggregate: what earlier runs admitted is replayed from the spool.
        let spool = try recovery?.spoolPath.map { path in
            try AggregateSpool(path: path, resumeLength: recovery?.resumeLength) { aggregate.add($0) }
        }
        defer { spool?.close() }
        var writer = try SinkWriter(sink: sink, sockets: sockets,
                                    resumeLength: aggregate.isStreaming ? recovery?.resumeLength : nil)
        try pipe.signalReady(.bound(bound))

        var outputs = 0
        var items = 0
        var acks: [UInt64] = []
        var foreign = 0
        var refused = 0
        var finished = false
        // Outputs PUSHed by workers wait here until the broker admits them: only an item still in
        // flight in this run may be written, one attempt's outputs each. So an output that arrives
        // after its item was dead-lettered, or a second copy of one already written, never is.
        var awaiting = IDTable<[[UInt8]]>()
        var offers: [OfferedOutput] = []

        func write(_ id: UInt64, _ lines: [[UInt8]]) throws {
            acks.append(id)
            items += 1
            for item in lines {
                outputs += 1
                if aggregate.isStreaming {
                    try writer.write(line: SinkAggregator.line(for: item, format: sink.format))
                } else {
                    try spool?.write(item)
                    aggregate.add(item)
                }
            }
        }
        /// Outputs from workers: held, and offered to the broker.
        func offer(_ batch: ReplyBatch, sender: String) {
            for outcome in batch.outcomes {
                guard case .completed(let lines) = outcome.status else { continue }
                guard outcome.epoch == epoch else {
                    foreign += 1
                    if foreign <= 10 || foreign % 1000 == 0 {
                        logger.warning("aggregator refused the output of item \(outcome.id) of another run (epoch \(outcome.epoch), this run is \(epoch)); \(foreign) so far")
                    }
                    continue
                }
                // A second copy while the first waits for its admission: the broker admits one.
                guard !awaiting.contains(outcome.id) else { continue }
                awaiting[outcome.id] = lines
                offers.append(OfferedOutput(id: outcome.id, epoch: outcome.epoch, attempt: outcome.attempt, sender: sender))
            }
        }
        func offerFrames(_ body: [[UInt8]], sender: String) {
            do {
                offer(try ReplyBatch(frames: body), sender: sender)
            } catch {
                logger.warning("aggregator dropped a malformed message: \(error)")
            }
        }
        func sendOffers() throws {
            guard !offers.isEmpty else { return }
            try pipe.send(.offered(offers))
            offers.removeAll(keepingCapacity: true)
        }
        func sendAcks() throws {
            guard !acks.isEmpty else { return }
            // Acks promise the outputs are in the sink: flush first.
            try writer.flush()
            if let recovery, let length = try spool?.commit(sync: recovery.syncBeforeAck) ?? writer.commit(sync: recovery.syncBeforeAck) {
                try pipe.send(.committed(acks, sinkLength: length))
            } else {
                try pipe.send(.acknowledged(acks))
            }
            acks.removeAll(keepingCapacity: true)
        }

        let loop = PollLoop()
        loop.register(pull) { _ in
            var drained = 0
            // Each message with the key its connection authenticated with, for the broker's admission.
            while drained < 1000, let (message, sender) = try pull.tryReceiveMultipart(property: Message.userIDProperty) {
                drained += 1
                offerFrames(message, sender: sender ?? "")
            }
            try sendOffers()
        }
        pipe.attach(to: loop) { command in
            switch command {
            case .outputs(let batch):
                for outcome in batch.outcomes {
                    if case .completed(let lines) = outcome.status { try write(outcome.id, lines) }
                }
            case .admission(let admitted, let dropped):
                for id in admitted {
                    guard let lines = awaiting.removeValue(forKey: id) else { continue }
                    try write(id, lines)
                }
                for id in dropped where awaiting.removeValue(forKey: id) != nil {
                    refused += 1
                    if refused <= 10 || refused % 1000 == 0 {
                        logger.info("aggregator dropped the outputs of item \(id): it was finished or dead-lettered already (\(refused) so far)")
                    }
                }
            case .finish:
                // Every item is acknowledged or given up on by now: what still waits, or still sits in
                // the PULL queue, is a late copy, and is not written.
                // The broker still counts these as unconfirmed: tell it before finishing.
                try sendAcks()
                if !aggregate.isStreaming {
                    for line in aggregate.finalLines() { try writer.write(line: line) }
                }
                try writer.finish()
                finished = true
                try pipe.send(.finished(outputs: UInt64(outputs), items: UInt64(items)))
                loop.stop()
            }
        }
        while !loop.isStopped {
            try loop.runOnce(maxWait: .milliseconds(500))
            if !loop.isStopped { try sendAcks() }
        }
        // Stopped before finishing (the broker failed): keep what was written.
        if !finished { try? writer.finish() }
    }
}

struct AggregatorFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Writes sink lines to a file, standard output, or a PUSH endpoint.
struct SinkWriter {
    private var file: UnsafeMutablePointer<FILE>?
    private var closeFile = false
    private var isFileSink = false
    private var push: Socket?
    private var pushEndpoint = ""

    /// `resumeLength`: a file sink is cut back to this length and appended to (a resumed run).
    init(sink: SinkSpec, sockets: SocketFactory, resumeLength: UInt64? = nil) throws {
        switch sink.kind {
        case .file(let path):
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            isFileSink = true
            if let resumeLength {
                file = try SinkFiles.reopen(path, at: resumeLength)
                closeFile = true
                return
            }
            do { file = try OutputFiles.openFile(path, .replace) } catch {
                throw AggregatorFailure("LC2013: cannot open sink file \(error.path): \(error.reason)")
            }
            closeFile = true
        case .stdout:
            file = fdopen(dup(1), "wb")
            closeFile = true
        case .push(let endpoint):
            // The profile queues only to a connected consumer and fails after a minute without one.
            let socket = try sockets.socket(.sink)
            do {
                try socket.connect(endpoint)
            } catch {
                throw AggregatorFailure("LC2014: cannot connect the sink to \(endpoint): \(error.code.message)")
            }
            push = socket
            pushEndpoint = endpoint
        }
    }

    /// Writes one line's bytes as they are, then a newline (file, stdout); one message per line (push).
    /// Bytes, not a C string: `fputs` would stop at the first NUL and lose the rest and the newline.
    mutating func write(line: [UInt8]) throws {
        if let file {
            let written = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            if written < line.count || fputc(0x0A, file) == EOF {
                throw AggregatorFailure("LC2015: cannot write the sink: \(String(cString: strerror(errno)))")
            }
        } else if let push {
            let sent = Result { () throws(ZMQError) in try push.send(line) }
            if case .failure(let error) = sent {
                if error.code == .again {
                    throw AggregatorFailure("LC2015: the sink's consumer at \(pushEndpoint) took nothing for 60 s; is it running?")
                }
                throw error
            }
        }
    }

    mutating func flush() throws {
        if let file, fflush(file) != 0 {
            throw AggregatorFailure("LC2015: cannot write the sink: \(String(cString: strerror(errno)))")
        }
    }

    /// For a file sink: flushes (with `sync`, to disk) and returns the file's length; nil for other sinks.
    mutating func commit(sync: Bool) throws -> UInt64? {
        guard let file, isFileSink else { return nil }
        try SinkFiles.commit(file, sync: sync, name: "the sink")
        return SinkFiles.position(file)
    }

    mutating func finish() throws {
        try flush()
        if let file, closeFile { fclose(file) }
        file = nil
        push?.close()
        push = nil
    }
}
