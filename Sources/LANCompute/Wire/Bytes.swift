// Big-endian integer writing and bounds-checked reading for the binary frames.

extension Array where Element == UInt8 {
    /// Byte by byte, most significant first, not the integer's raw buffer appended as a sequence:
    /// that generic append, once per field of the reply and ack frames, was the largest single
    /// symbol in a worker thread's profile (Docs/performance.md).
    @inline(__always)
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            append(UInt8(truncatingIfNeeded: value >> shift))
            shift -= 8
        }
    }
}

/// Reads a frame front to back; every read checks the remaining length first.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }
    var remaining: Int { bytes.count - offset }

    mutating func readInteger<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw WireError("truncated frame: no room for \(what)") }
        var value: T = 0
        for index in 0..<size { value = value << 8 | T(bytes[offset + index]) }
        offset += size
        return value
    }

    mutating func readUInt8(_ what: String) throws(WireError) -> UInt8 { try readInteger(UInt8.self, what) }
    mutating func readUInt16(_ what: String) throws(WireError) -> UInt16 { try readInteger(UInt16.self, what) }
    mutating func readUInt32(_ what: String) throws(WireError) -> UInt32 { try readInteger(UInt32.self, what) }
    mutating func readUInt64(_ what: String) throws(WireError) -> UInt64 { try readInteger(UInt64.self, what) }

    mutating func readBytes(_ count: Int, _ what: String) throws(WireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw WireError("truncated frame: \(what) needs \(count) bytes, \(remaining) left") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
}
