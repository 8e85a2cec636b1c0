// The aggregator actor: PULLs final outputs fanned in from workers, drops duplicates by item id, writes the sink, acks.

import Foundation
import Logging
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the broker thread tells the aggregator actor.
enum AggregatorCommand: ActorMessage {
    /// Outputs of final-stage items that reached the broker in a REPLY instead of the PULL (client items).
    case outputs(ReplyBatch)
    /// Write the final aggregate, report the last acks and the totals, and end.
    case finish

    private enum Kind: UInt8 {
        case outputs = 1
        case finish = 2
    }

    var frames: [[UInt8]] {
        switch self {
        case .outputs(let batch): [[Kind.outputs.rawValue]] + batch.frames
        case .finish: [[Kind.finish.rawValue]]
        }
    }

    init(frames: [[UInt8]]) throws {
        var reader = ByteReader(frames.first ?? [])
        switch Kind(rawValue: try reader.readUInt8("aggregator command kind")) {
        case .outputs: self = .outputs(try ReplyBatch(frames: Array(frames.dropFirst())))
        case .finish: self = .finish
        case nil: throw WireError("unknown aggregator command")
        }
    }
}

/// What the aggregator actor tells the broker thread.
enum AggregatorEvent: ActorMessage, Equatable {
    /// The ready report: the endpoint the PULL actually bound (port resolved).
    case bound(String)
    /// These items' outputs are in the sink (flushed): the broker may forget them.
    case acknowledged([UInt64])
    /// The sink is complete: outputs written, distinct items seen.
    case finished(outputs: UInt64, items: UInt64)

    private enum Kind: UInt8 {
        case bound = 1
        case acknowledged = 2
        case finished = 3
    }

    var frames: [[UInt8]] {
        switch self {
        case .bound(let endpoint):
            return [[Kind.bound.rawValue], Array(endpoint.utf8)]
        case .acknowledged(let ids):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(ids.count * 8)
            for id in ids { bytes.appendBigEndian(id) }
            return [[Kind.acknowledged.rawValue], bytes]
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
            guard frames[1].count % 8 == 0 else { throw WireError("acknowledged ids of \(frames[1].count) bytes, not a multiple of 8") }
            var ids: [UInt64] = []
            ids.reserveCapacity(frames[1].count / 8)
            while !body.isAtEnd { ids.append(try body.readUInt64("acknowledged id")) }
            self = .acknowledged(ids)
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
        var writer = try SinkWriter(sink: sink, sockets: sockets)
        try pipe.signalReady(.bound(bound))

        var seen = Set<UInt64>()
        var aggregate = SinkAggregator(sink)
        var outputs = 0
        var acks: [UInt64] = []
        var finished = false

        func take(_ batch: ReplyBatch) throws {
            for outcome in batch.outcomes {
                guard case .completed(let items) = outcome.status else { continue }
                acks.append(outcome.id)
                guard seen.insert(outcome.id).inserted else { continue }  // a redelivered item: already in the sink
                for item in items {
                    outputs += 1
                    if aggregate.isStreaming {
                        try writer.write(line: SinkAggregator.line(for: item, format: sink.format))
                    } else {
                        aggregate.add(item)
                    }
                }
            }
        }
        func takeFrames(_ body: [[UInt8]]) throws {
            let batch: ReplyBatch
            do {
                batch = try ReplyBatch(frames: body)
            } catch {
                logger.warning("aggregator dropped a malformed message: \(error)")
                return
            }
            try take(batch)
        }
        func sendAcks() throws {
            guard !acks.isEmpty else { return }
            // Acks promise the outputs are in the sink: flush first.
            try writer.flush()
            try pipe.send(.acknowledged(acks))
            acks.removeAll(keepingCapacity: true)
        }

        let loop = PollLoop()
        loop.register(pull) { _ in
            var drained = 0
            while drained < 1000, let message = try pull.tryReceiveMultipart() {
                drained += 1
                try takeFrames(message)
            }
        }
        pipe.attach(to: loop) { command in
            switch command {
            case .outputs(let batch):
                try take(batch)
            case .finish:
                // Everything acknowledged is already here; late duplicates may still sit in the PULL queue.
                while let late = try pull.tryReceiveMultipart() { try takeFrames(late) }
                // The broker still counts these as unconfirmed: tell it before finishing.
                try sendAcks()
                if !aggregate.isStreaming {
                    for line in aggregate.finalLines() { try writer.write(line: line) }
                }
                try writer.finish()
                finished = true
                try pipe.send(.finished(outputs: UInt64(outputs), items: UInt64(seen.count)))
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
    private var push: Socket?
    private var pushEndpoint = ""

    init(sink: SinkSpec, sockets: SocketFactory) throws {
        switch sink.kind {
        case .file(let path):
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            guard let handle = fopen(path, "wb") else {
                throw AggregatorFailure("LC2013: cannot open sink file \(path): \(String(cString: strerror(errno)))")
            }
            file = handle
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

    mutating func write(line: String) throws {
        if let file {
            var text = line
            text.append("\n")
            let written = text.withCString { fputs($0, file) }
            if written < 0 { throw AggregatorFailure("LC2015: cannot write the sink: \(String(cString: strerror(errno)))") }
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

    mutating func finish() throws {
        try flush()
        if let file, closeFile { fclose(file) }
        file = nil
        push?.close()
        push = nil
    }
}
