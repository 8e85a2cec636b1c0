// The source reader actor: reads a file, stdin or generated source and hands the items to the broker thread.

import Foundation
import Logging
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a source reader hands the broker, through a ``SourceHandoff``.
enum SourceMessage: Equatable, Sendable {
    /// How many items the source holds, when known up front.
    case total(UInt64)
    /// Items with consecutive ids from `firstID`, one payload each.
    case batch(firstID: UInt64, payloads: [[UInt8]])
    /// The source is exhausted after `count` items.
    case end(count: UInt64)
    /// The source failed; the text starts with its LC code.
    case failed(String)

    static let batchSize = 256
}

/// How the source reader's messages reach the broker thread: the reader puts each message here,
/// then sends a one-byte doorbell through its PUSH to the broker's inproc PULL; the broker takes one
/// message per doorbell it receives. The doorbells keep what the socket gave before: the PULL's HWM
/// paces the reading, and the broker's poll wakes when there is something to take. The payloads
/// change threads as the arrays the reader made: when they went as frames, the reader's `zmq_send`
/// copied each into a message and the broker copied it out again (an allocation and a copy per
/// item on each thread; Docs/performance.md).
///
/// Both ends are in one process and the inproc endpoint's name is the broker's own, so a doorbell
/// comes only from its reader; one with nothing to take is logged and ignored.
final class SourceHandoff: Sendable {
    /// The doorbell frame.
    static let doorbell: [UInt8] = [0xD0]

    private let messages = LockedValue(FIFOQueue<SourceMessage>())

    init() {}

    /// Called by the reader before it rings.
    func put(_ message: SourceMessage) { messages.withLock { $0.append(message) } }

    /// Called by the broker for each doorbell: the oldest message not yet taken.
    func take() -> SourceMessage? { messages.withLock { $0.popFirst() } }

}

/// Reads one finite source to its end, as an actor, handing its batches over through `handoff` and
/// ringing for each at `endpoint` (the broker's inproc PULL).
struct SourceReader: Sendable {
    let spec: SourceSpec
    let sockets: SocketFactory
    let endpoint: String
    let handoff: SourceHandoff
    let logger: Logger

    /// Why the reader stopped before the end of its source: its owner asked it to.
    private struct Terminated: Error {}

    /// Starts the reader; it ends by itself at the end of the source, or when stopped.
    func start() throws -> ActorThread<Never, Never> {
        try ActorThread(name: "lancompute-source", context: sockets.context) { pipe in
            let socket = try sockets.socket(.sourceReader)
            try socket.connect(endpoint)
            try pipe.signalReady()
            // Waits for room in the PUSH's queue, or for terminate, whichever comes first.
            let poller = Poller()
            let pushIndex = poller.add(socket, events: .out)
            let pipeIndex = poller.add(pipe.socket)
            let send = { (message: SourceMessage) throws in
                handoff.put(message)
                while !(try socket.trySend(SourceHandoff.doorbell)) {
                    _ = try poller.poll(timeout: nil)
                    if poller.isReadable(pipeIndex), case .terminate = try pipe.receive() { throw Terminated() }
                    _ = poller.readyEvents(at: pushIndex)
                }
            }
            do {
                try read(send: send)
            } catch let error as SourceError {
                try? send(.failed(error.message))
            } catch is Terminated {
                return
            }
            // Done: stay until the owner stops this actor, so that the pipe is read until the end.
            while case .command = try pipe.receive() {}
        }
    }

    private func read(send: (SourceMessage) throws -> Void) throws {
        var batch: [[UInt8]] = []
        var nextID: UInt64 = 0
        var firstID: UInt64 = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            try send(.batch(firstID: firstID, payloads: batch))
            batch.removeAll(keepingCapacity: true)
        }
        func emit(_ payload: [UInt8]) throws {
            if batch.isEmpty { firstID = nextID }
            batch.append(payload)
            nextID += 1
            if batch.count >= SourceMessage.batchSize { try flush() }
        }

        do {
            switch spec.kind {
            case .generate(let count, let size):
                try send(.total(UInt64(count)))
                for index in 0..<count { try emit(Self.generated(index: index, size: size)) }
            case .file(let path):
                guard let file = fopen(path, "rb") else {
                    throw SourceError("LC2010: cannot open source file \(path): \(String(cString: strerror(errno)))")
                }
                defer { fclose(file) }
                if spec.format == .lines, let total = Self.countLines(path: path) {
                    try send(.total(UInt64(total)))
                }
                try readStream(file, name: path, emit: emit)
            case .stdin:
                guard let input = fdopen(0, "rb") else { throw SourceError("LC2011: cannot read standard input") }
                try readStream(input, name: "standard input", emit: emit)
            case .pull:
                preconditionFailure("a pull source is read by the broker itself")
            }
        } catch let failure as SourceError {
            // The items read before the failure are the run's (Docs/errors.md, LC2011): they go to
            // the broker before the failure does.
            try flush()
            throw failure
        }
        try flush()
        try send(.end(count: nextID))
    }

    private func readStream(_ file: UnsafeMutablePointer<FILE>, name: String, emit: ([UInt8]) throws -> Void) throws {
        switch spec.format {
        case .lines:
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            defer { free(line) }
            while true {
                let length = getline(&line, &capacity, file)
                if length < 0 { break }
                var count = length
                if count > 0, line![count - 1] == 0x0A { count -= 1 }
                if count > 0, line![count - 1] == 0x0D { count -= 1 }
                try emit(Array(UnsafeRawBufferPointer(start: line, count: count)))
            }
            if ferror(file) != 0 { throw SourceError("LC2011: error reading \(name): \(String(cString: strerror(errno)))") }
        case .binary:
            var prefix = [UInt8](repeating: 0, count: 4)
            while true {
                let got = fread(&prefix, 1, 4, file)
                if got == 0 { break }
                guard got == 4 else { throw SourceError("LC2012: \(name) ends inside a length prefix (binary format: 4-byte big-endian length, then the item)") }
                let length = Int(prefix.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                var payload = [UInt8](repeating: 0, count: length)
                if length > 0 {
                    guard fread(&payload, 1, length, file) == length else {
                        throw SourceError("LC2012: \(name) ends inside an item of \(length) bytes (binary format)")
                    }
                }
                try emit(payload)
            }
        }
    }

    /// Counts lines with a fast scan, so progress can show a total; nil if the file cannot be read.
    static func countLines(path: String) -> Int? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var lines = 0
        var last: UInt8 = 0x0A
        while true {
            let got = fread(&buffer, 1, buffer.count, file)
            if got <= 0 { break }
            for index in 0..<got where buffer[index] == 0x0A { lines += 1 }
            last = buffer[got - 1]
        }
        return last == 0x0A ? lines : lines + 1
    }

    /// A synthetic item: its index in decimal, padded with letters to exactly `size` bytes.
    ///
    /// The letters are read from a fixed cycle of 251 (``letterCycle``), entered at the index modulo
    /// 251, so no two neighbouring items have the same letters. On the item path of every `generate`
    /// source, and a benchmark measures the pipeline, not its source: the item is written into storage
    /// of its final size, the `item-N-` prefix in place and the letters copied from the cycle, with no
    /// work per byte. `index` is never negative: it counts the items from 0.
    static func generated(index: Int, size: Int) -> [UInt8] {
        var digits = 1
        var rest = index / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        // "item-", the digits, "-".
        let prefixCount = 6 + digits
        if prefixCount >= size { return Array(Array("item-\(index)-".utf8).prefix(size)) }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            // "item-" byte by byte: a loop over the literal's UTF-8 view was not inlined, and cost as
            // much as the rest of the item.
            buffer[0] = 0x69
            buffer[1] = 0x74
            buffer[2] = 0x65
            buffer[3] = 0x6D
            buffer[4] = 0x2D
            var value = index
            for offset in stride(from: 4 + digits, to: 4, by: -1) {
                buffer[offset] = 0x30 &+ UInt8(truncatingIfNeeded: value % 10)
                value /= 10
            }
            buffer[prefixCount - 1] = 0x2D
            letterRun.withUnsafeBufferPointer { run in
                var from = index % letterCycleLength
                var offset = prefixCount
                while offset < size {
                    let count = min(run.count - from, size - offset)
                    UnsafeMutableRawPointer(buffer.baseAddress! + offset).copyMemory(from: run.baseAddress! + from, byteCount: count)
                    offset += count
                    // The run is whole cycles, so the next copy starts at the cycle's start.
                    from = 0
                }
            }
            initialized = size
        }
    }

    static let letterCycleLength = 251

    /// The letter cycle of `generated(index:size:)`: letter k is 'a' plus p(k) modulo 26, where
    /// p(0) = 0 and p(k + 1) = p(k) x 31 + 7 (mod 2^64).
    static let letterCycle: [UInt8] = {
        var position: UInt = 0
        return (0..<letterCycleLength).map { _ in
            defer { position = position &* 31 &+ 7 }
            return 0x61 &+ UInt8(truncatingIfNeeded: position % 26)
        }
    }()

    /// The cycle repeated to some 4 KiB, so that an item of up to that size takes its letters in one copy.
    private static let letterRun: [UInt8] = Array(repeating: letterCycle, count: 17).flatMap { $0 }
}

struct SourceError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
