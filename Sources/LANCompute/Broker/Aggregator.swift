// The aggregator: PULLs final outputs fanned in from workers, drops duplicates by item id, writes the sink, acks.

import Foundation
import Logging
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Messages between the broker thread and the aggregator thread (over an inproc PAIR), kind byte first.
/// To the broker: `R` + endpoint text (bound, ready); `X` + text (failed); `A` + ids (8 bytes each) now in
/// the sink; `D` + outputs (8) + items (8): finished. To the aggregator: `O` then a reply batch
/// (outputs forwarded by the broker); `F`: write the final aggregate and finish.
enum AggregatorMessage {
    static func ids(_ ids: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "A")]
        bytes.reserveCapacity(1 + ids.count * 8)
        for id in ids { bytes.appendBigEndian(id) }
        return bytes
    }

    static func decodeIDs(_ frame: [UInt8]) -> [UInt64] {
        var ids: [UInt64] = []
        ids.reserveCapacity(frame.count / 8)
        var index = 1
        while index + 8 <= frame.count {
            ids.append(frame[index..<index + 8].reduce(0) { $0 << 8 | UInt64($1) })
            index += 8
        }
        return ids
    }
}

/// What the aggregator did, reported when it finishes.
struct AggregatorTotals: Sendable {
    var outputs: Int
    var items: Int
}

/// The aggregator's thread: owns the PULL socket workers PUSH final outputs to, and the sink.
struct Aggregator: Sendable {
    let sink: SinkSpec
    let bindEndpoint: String
    let maxFrameSize: Int64
    /// A second endpoint for workers in the same process, when set.
    let inprocEndpoint: String?
    let context: Context
    let brokerEndpoint: String
    let logger: Logger
    /// The run's epoch: outputs of another run (held by a worker across a broker restart) are refused.
    let epoch: UInt32

    func start() -> Thread {
        let thread = Thread { self.run() }
        thread.name = "lancompute-aggregator"
        thread.start()
        return thread
    }

    private func run() {
        let control: Socket
        do {
            control = try Socket(.pair, context: context)
            try control.connect(brokerEndpoint)
        } catch {
            logger.error("aggregator cannot reach the broker thread: \(error)")
            return
        }
        do {
            try serve(control)
        } catch let error as AggregatorFailure {
            try? control.send(multipart: [Array(("X" + error.message).utf8)])
        } catch {
            try? control.send(multipart: [Array("X\(error)".utf8)])
        }
    }

    private func serve(_ control: Socket) throws {
        let pull = try Socket(.pull, context: context)
        try pull.set(.receiveHighWaterMark, 10_000)
        try pull.set(.maxMessageSize, maxFrameSize)
        do {
            try pull.bind(bindEndpoint)
        } catch {
            throw AggregatorFailure("LC2002: cannot bind the aggregator endpoint \(bindEndpoint): \(error.code.message) (\(error.code.cName)); choose another with --aggregator")
        }
        // Read back before the inproc bind, which would become the "last" endpoint.
        let bound = try pull.lastEndpoint
        if let inprocEndpoint { try pull.bind(inprocEndpoint) }
        // Before the sink is opened and ready is sent, so a key that cannot be compiled fails the run
        // instead of writing an empty aggregate.
        var aggregate: SinkAggregator
        do { aggregate = try SinkAggregator(sink) } catch { throw AggregatorFailure("LC1055: \(error.message)") }
        var writer = try SinkWriter(sink: sink, context: context)
        try control.send(multipart: [Array(("R" + bound).utf8)])

        var seen = CompletionWindow()
        var outputs = 0
        var acks: [UInt64] = []
        var foreign = 0
        let poller = Poller()
        poller.add(pull)
        poller.add(control)

        func take(_ body: [[UInt8]]) throws {
            let batch: ReplyBatch
            do {
                batch = try ReplyBatch(frames: body)
            } catch {
                logger.warning("aggregator dropped a malformed message: \(error)")
                return
            }
            for outcome in batch.outcomes {
                guard case .completed(let items) = outcome.status else { continue }
                guard outcome.epoch == epoch else {
                    foreign += 1
                    if foreign <= 10 || foreign % 1000 == 0 {
                        logger.warning("aggregator refused the output of item \(outcome.id) of another run (epoch \(outcome.epoch), this run is \(epoch)); \(foreign) so far")
                    }
                    continue
                }
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

        while true {
            _ = try poller.poll(timeout: .milliseconds(500))
            var drained = 0
            while drained < 1000, let message = try pull.tryReceiveMultipart() {
                drained += 1
                try take(message)
            }
            while let message = try control.tryReceiveMultipart() {
                guard let kind = message.first?.first else { continue }
                switch kind {
                case UInt8(ascii: "O"):
                    try take(Array(message.dropFirst()))
                case UInt8(ascii: "F"):
                    // Everything acknowledged is already here; late duplicates may still sit in the PULL queue.
                    while let late = try pull.tryReceiveMultipart() { try take(late) }
                    if !acks.isEmpty {
                        // The broker still counts these as unconfirmed: tell it before finishing.
                        try writer.flush()
                        try control.send(multipart: [AggregatorMessage.ids(acks)])
                        acks.removeAll()
                    }
                    if !aggregate.isStreaming {
                        for line in aggregate.finalLines() { try writer.write(line: line) }
                    }
                    try writer.finish()
                    var done: [UInt8] = [UInt8(ascii: "D")]
                    done.appendBigEndian(UInt64(outputs))
                    done.appendBigEndian(UInt64(seen.count))
                    try control.send(multipart: [done])
                    return
                default:
                    logger.warning("aggregator: unknown control message")
                }
            }
            if !acks.isEmpty {
                // Acks promise the outputs are in the sink: flush first.
                try writer.flush()
                try control.send(multipart: [AggregatorMessage.ids(acks)])
                acks.removeAll(keepingCapacity: true)
            }
        }
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

    init(sink: SinkSpec, context: Context) throws {
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
            let socket = try Socket(.push, context: context)
            // Bounded: a sink consumer that went away must not keep the broker from exiting.
            try socket.set(.linger, .seconds(10))
            // Queue only to a connected consumer (otherwise outputs would wait in a pipe to nobody),
            // and fail the run if no consumer takes anything for a minute rather than hang it.
            try socket.set(.immediate, true)
            try socket.set(.sendTimeout, .seconds(60))
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

    mutating func finish() throws {
        try flush()
        if let file, closeFile { fclose(file) }
        file = nil
        push?.close()
        push = nil
    }
}
