// The sink's side of resume: cutting a file sink back to its journaled length, and the aggregate spool.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum SinkFiles {
    /// Opens `path` for appending after cutting it back to `length` bytes, the length the journal
    /// last recorded: what was written after it belongs to items that are done again.
    static func reopen(_ path: String, at length: UInt64) throws -> UnsafeMutablePointer<FILE> {
        var info = stat()
        let size = lstat(path, &info) == 0 ? UInt64(info.st_size) : 0
        guard size >= length else {
            throw AggregatorFailure("LC2063: cannot resume: \(path) holds \(size) bytes, but the journal recorded \(length) in the sink; was it changed since the crash? Restore it, or start over with --fresh")
        }
        let file: UnsafeMutablePointer<FILE>
        do { file = try OutputFiles.openFile(path, .update) } catch {
            throw AggregatorFailure("LC2013: cannot open sink file \(error.path): \(error.reason)")
        }
        if ftruncate(fileno(file), off_t(length)) != 0 || fseeko(file, off_t(length), SEEK_SET) != 0 {
            fclose(file)
            throw AggregatorFailure("LC2015: cannot cut \(path) back to \(length) bytes to resume: \(String(cString: strerror(errno)))")
        }
        return file
    }

    /// The file's length as written so far (after a flush, what the kernel holds).
    static func position(_ file: UnsafeMutablePointer<FILE>) -> UInt64 { UInt64(max(0, ftello(file))) }

    /// Flushes `file` and, with `sync`, forces it to disk.
    static func commit(_ file: UnsafeMutablePointer<FILE>, sync: Bool, name: String) throws {
        if fflush(file) != 0 || (sync && fsync(fileno(file)) != 0) {
            throw AggregatorFailure("LC2015: cannot write \(name): \(String(cString: strerror(errno)))")
        }
    }
}

/// The outputs an aggregate sink (count-by-key, sum-by-key, collect) has taken, kept in the state
/// directory as they are admitted: each a 4-byte big-endian length and the bytes. The aggregate
/// lives in memory until the run ends; after a crash it is rebuilt by replaying the spool up to the
/// journaled length.
struct AggregateSpool {
    let path: String
    private let file: UnsafeMutablePointer<FILE>

    /// Opens the spool: empty for a fresh run; for a resume cut back to `resumeLength`, with every
    /// output it holds given to `replay`.
    init(path: String, resumeLength: UInt64?, replay: ([UInt8]) -> Void) throws {
        self.path = path
        if let resumeLength {
            let data = FileManager.default.contents(atPath: path) ?? Data()
            guard UInt64(data.count) >= resumeLength else {
                throw AggregatorFailure("LC2063: cannot resume: the aggregate spool \(path) holds \(data.count) bytes, but the journal recorded \(resumeLength)")
            }
            let bytes = [UInt8](data.prefix(Int(resumeLength)))
            var offset = 0
            while offset < bytes.count {
                guard bytes.count - offset >= 4 else {
                    throw AggregatorFailure("LC2061: the aggregate spool \(path) at offset \(offset): it ends inside a length")
                }
                let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
                guard bytes.count - offset - 4 >= length else {
                    throw AggregatorFailure("LC2061: the aggregate spool \(path) at offset \(offset): it ends inside an output")
                }
                replay(Array(bytes[offset + 4..<offset + 4 + length]))
                offset += 4 + length
            }
            file = try SinkFiles.reopen(path, at: resumeLength)
        } else {
            guard let handle = fopen(path, "wb") else {
                throw AggregatorFailure("LC2060: cannot create the aggregate spool \(path): \(String(cString: strerror(errno)))")
            }
            file = handle
        }
    }

    func write(_ output: [UInt8]) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + output.count)
        bytes.appendBigEndian(UInt32(output.count))
        bytes += output
        guard bytes.withUnsafeBytes({ fwrite($0.baseAddress, 1, $0.count, file) }) == bytes.count else {
            throw AggregatorFailure("LC2060: cannot write the aggregate spool \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Flushes (and with `sync`, syncs) the spool and returns its length.
    func commit(sync: Bool) throws -> UInt64 {
        try SinkFiles.commit(file, sync: sync, name: path)
        return SinkFiles.position(file)
    }

    func close() { fclose(file) }
}
