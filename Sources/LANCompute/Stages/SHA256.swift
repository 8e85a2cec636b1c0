// SHA-256 for the sha256 builtin: swift-crypto's implementation behind the interface the engine uses.
//
// swift-crypto (BoringSSL on Linux, CryptoKit on Apple platforms) picks the CPU's SHA
// instructions where there are any; `Scripts/bench/sha256` measured it against the hand-written
// implementation this replaced (kept in Scripts/bench/sha256-bench/), see Docs/performance.md.

import Crypto

/// An incremental SHA-256 hash.
public struct SHA256: Sendable {
    private var hasher = Crypto.SHA256()

    public init() {}

    /// The digest of `bytes`, 32 bytes.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        Array(Crypto.SHA256.hash(data: bytes))
    }

    /// The digest of `bytes` as 64 lowercase hexadecimal digits.
    public static func hexDigest(_ bytes: [UInt8]) -> String {
        String(decoding: hexDigestBytes(bytes), as: UTF8.self)
    }

    /// The digest of `bytes` as the UTF-8 of 64 lowercase hexadecimal digits, without going
    /// through a `String` (the builtin's output is bytes).
    public static func hexDigestBytes(_ bytes: [UInt8]) -> [UInt8] {
        hex(Crypto.SHA256.hash(data: bytes))
    }

    public mutating func update(_ bytes: [UInt8]) {
        hasher.update(data: bytes)
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: buffer)
    }

    /// The 32-byte digest of everything given to `update`.
    public mutating func finalize() -> [UInt8] {
        Array(hasher.finalize())
    }

    private static func hex(_ digest: Crypto.SHA256.Digest) -> [UInt8] {
        let digits: StaticString = "0123456789abcdef"
        return [UInt8](unsafeUninitializedCapacity: 64) { text, count in
            digest.withUnsafeBytes { raw in
                digits.withUTF8Buffer { digits in
                    for (index, byte) in raw.enumerated() {
                        text[2 * index] = digits[Int(byte >> 4)]
                        text[2 * index + 1] = digits[Int(byte & 0x0f)]
                    }
                }
            }
            count = 64
        }
    }
}
