// Reads a file, stdin or generated source on its own thread and hands items to the broker over inproc.

import Foundation
import Logging
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Messages from a source reader to the broker, one kind byte first:
/// `T` + total (8 bytes): how many items the source holds, when known up front;
/// `B` + first id (8 bytes), then one payload frame per item, ids consecutive;
/// `E` + count (8 bytes): the source is exhausted; `X` + text: the source failed.
enum SourceMessage {
    static let batchSize = 256

    static func header(_ kind: Character, _ value: UInt64) -> [UInt8] {
        var bytes = [UInt8(ascii: kind.unicodeScalars.first!)]
        bytes.appendBigEndian(value)
        return bytes
    }

    static func value(of frame: [UInt8]) -> UInt64 {
        guard frame.count >= 9 else { return 0 }
        return frame[1...8].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Runs one finite source to its end, pushing batches to `endpoint` (the broker's inproc PULL).
struct SourceReader: Sendable {
    let spec: SourceSpec
    let context: Context
    let endpoint: String
    let logger: Logger

    func start() -> Thread {
        let thread = Thread { self.run() }
        thread.name = "lancompute-source"
        thread.start()
        return thread
    }

    private func run() {
        do {
            let socket = try Socket(.push, context: context)
            // A small queue: when the pipeline is full the broker stops reading and this thread waits here.
            try socket.set(.sendHighWaterMark, 16)
            try socket.connect(endpoint)
            do {
                try read(into: socket)
            } catch let error as SourceError {
                try? socket.send(multipart: [Array(("X" + error.message).utf8)])
            }
        } catch {
            // The broker is shutting down (context terminated): nothing left to do.
            logger.debug("source reader stopped: \(error)")
        }
    }

    private func read(into socket: Socket) throws {
        var batch: [[UInt8]] = []
        var nextID: UInt64 = 0
        var firstID: UInt64 = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            try socket.send(multipart: [SourceMessage.header("B", firstID)] + batch)
            batch.removeAll(keepingCapacity: true)
        }
        func emit(_ payload: [UInt8]) throws {
            if batch.isEmpty { firstID = nextID }
            batch.append(payload)
            nextID += 1
            if batch.count >= SourceMessage.batchSize { try flush() }
        }

        switch spec.kind {
        case .generate(let count, let size):
            try socket.send(multipart: [SourceMessage.header("T", UInt64(count))])
            for index in 0..<count { try emit(Self.generated(index: index, size: size)) }
        case .file(let path):
            guard let file = fopen(path, "rb") else {
                throw SourceError("LC2010: cannot open source file \(path): \(String(cString: strerror(errno)))")
            }
            defer { fclose(file) }
            if spec.format == .lines, let total = Self.countLines(path: path) {
                try socket.send(multipart: [SourceMessage.header("T", UInt64(total))])
            }
            try readStream(file, name: path, emit: emit)
        case .stdin:
            guard let input = fdopen(0, "rb") else { throw SourceError("LC2011: cannot read standard input") }
            try readStream(input, name: "standard input", emit: emit)
        case .pull:
            preconditionFailure("a pull source is read by the broker itself")
        }
        try flush()
        try socket.send(multipart: [SourceMessage.header("E", nextID)])
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
    static func generated(index: Int, size: Int) -> [UInt8] {
        var bytes = Array("item-\(index)-".utf8)
        if bytes.count > size { return Array(bytes.prefix(size)) }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var position = UInt(index)
        while bytes.count < size {
            bytes.append(alphabet[Int(position % UInt(alphabet.count))])
            position = position &* 31 &+ 7
        }
        return bytes
    }
}

struct SourceError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
