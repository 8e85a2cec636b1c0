// CPace (draft-irtf-cfrg-cpace) over Ristretto255 with SHA-512: the password-authenticated key exchange that pairing runs.

import CSodium
import Crypto
import Foundation

/// One party's side of a CPace run, as the CFRG draft specifies it for the `CPACE-RISTR255-SHA512`
/// suite: a generator derived from the password (here the pairing code), an ephemeral scalar, and
/// the intermediate session key (ISK) both sides reach only if they used the same password.
///
/// The group arithmetic is libsodium's (`crypto_core_ristretto255_from_hash`,
/// `crypto_scalarmult_ristretto255`, `crypto_core_ristretto255_scalar_random`); SHA-512 is
/// swift-crypto's. Nothing here is hand-written curve code.
public struct CPace: Sendable {
    /// The suite's domain separation identifier.
    public static let domainSeparator = Array("CPaceRistretto255".utf8)
    /// SHA-512's input block size: the generator string is padded so the password fills the first block.
    static let hashBlockSize = 128
    public static let pointSize = 32
    public static let sessionIDSize = 16

    /// The public share this party sends (`Ya` or `Yb`).
    public let share: [UInt8]
    private let scalar: [UInt8]

    /// Picks a fresh ephemeral scalar and computes the share for `password` on the channel `channel`
    /// (the draft's `CI`) in the session `sessionID`. Returns nil only if the generator is the
    /// identity, which a hash output makes impossible in practice.
    public init?(password: [UInt8], channel: [UInt8], sessionID: [UInt8]) {
        Self.initializeSodium()
        var scalar = [UInt8](repeating: 0, count: Int(crypto_core_ristretto255_SCALARBYTES))
        crypto_core_ristretto255_scalar_random(&scalar)
        self.init(password: password, channel: channel, sessionID: sessionID, scalar: scalar)
    }

    /// With a given scalar: the draft's test vectors fix it.
    init?(password: [UInt8], channel: [UInt8], sessionID: [UInt8], scalar: [UInt8]) {
        Self.initializeSodium()
        let generator = Self.generator(password: password, channel: channel, sessionID: sessionID)
        var share = [UInt8](repeating: 0, count: Self.pointSize)
        guard crypto_scalarmult_ristretto255(&share, scalar, generator) == 0 else { return nil }
        self.scalar = scalar
        self.share = share
    }

    /// The intermediate session key from the peer's share, or nil when that share is not a valid
    /// Ristretto255 encoding or yields the identity (the draft's `scalar_mult_vfy` abort).
    /// The transcript is in initiator-responder order: the initiator's share and associated data first.
    public func sessionKey(peerShare: [UInt8], sessionID: [UInt8], initiator: (share: [UInt8], data: [UInt8]),
                           responder: (share: [UInt8], data: [UInt8])) -> [UInt8]? {
        guard peerShare.count == Self.pointSize else { return nil }
        var shared = [UInt8](repeating: 0, count: Self.pointSize)
        // Fails (-1) for an invalid encoding and for the identity as result.
        guard crypto_scalarmult_ristretto255(&shared, scalar, peerShare) == 0 else { return nil }
        var input = Self.lengthValue(Self.domainSeparator + Array("_ISK".utf8), sessionID, shared)
        input += Self.lengthValue(initiator.share, initiator.data) + Self.lengthValue(responder.share, responder.data)
        return Array(SHA512.hash(data: input))
    }

    /// The draft's `calculate_generator`: SHA-512 of the generator string, mapped to the group.
    static func generator(password: [UInt8], channel: [UInt8], sessionID: [UInt8]) -> [UInt8] {
        let string = generatorString(password: password, channel: channel, sessionID: sessionID)
        let hash = Array(SHA512.hash(data: string))
        var point = [UInt8](repeating: 0, count: pointSize)
        _ = crypto_core_ristretto255_from_hash(&point, hash)
        return point
    }

    /// `lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid)`, the padding making DSI and PRS fill one hash block.
    static func generatorString(password: [UInt8], channel: [UInt8], sessionID: [UInt8]) -> [UInt8] {
        let used = prependLength(password).count + prependLength(domainSeparator).count
        let padding = max(0, hashBlockSize - 1 - used)
        return lengthValue(domainSeparator, password, [UInt8](repeating: 0, count: padding), channel, sessionID)
    }

    /// The draft's `lv_cat`: each part preceded by its length.
    public static func lengthValue(_ parts: [UInt8]...) -> [UInt8] {
        parts.reduce(into: []) { $0 += prependLength($1) }
    }

    /// The draft's `prepend_len`: the length as unsigned LEB128, then the bytes.
    static func prependLength(_ data: [UInt8]) -> [UInt8] {
        var length = data.count
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(length & 0x7F)
            length >>= 7
            if length > 0 { byte |= 0x80 }
            out.append(byte)
        } while length > 0
        return out + data
    }

    /// `sodium_init` is idempotent and thread-safe; it picks the fastest implementations and seeds the RNG.
    private static func initializeSodium() {
        _ = sodiumReady
    }

    private static let sodiumReady: Bool = sodium_init() >= 0
}
