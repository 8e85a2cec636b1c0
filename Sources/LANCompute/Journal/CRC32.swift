// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) with a 256-entry table, for the journal's record frames.

/// The CRC-32 zlib computes (`crc32()`), written here because zlib is not reachable from Swift on Linux.
/// Check value: `CRC32.checksum("123456789")` is `0xCBF43926`.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        update(0, bytes)
    }

    /// Continues `crc` (a previous result, 0 to start) over `bytes`.
    static func update(_ crc: UInt32, _ bytes: some Collection<UInt8>) -> UInt32 {
        var value = ~crc
        table.withUnsafeBufferPointer { table in
            for byte in bytes { value = table[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8) }
        }
        return ~value
    }

    static func checksum(_ text: String) -> UInt32 { checksum(Array(text.utf8)) }
}
