// CURVE key pairs and the Z85 text encoding ZeroMQ uses for keys (RFC 32).

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Z85, ZeroMQ's base-85 text encoding (`zmq_z85_encode`, `zmq_z85_decode`).
///
/// Every 4 bytes become 5 printable characters, so binary data must be a multiple of
/// 4 bytes long and text a multiple of 5 characters. A 32-byte CURVE key is 40 characters.
public enum Z85 {
    /// Encodes `bytes` (a multiple of 4 bytes long) as Z85 text.
    /// Throws ``ZMQErrorCode/invalidArgument`` for any other length.
    public static func encode(_ bytes: some Collection<UInt8>) throws(ZMQError) -> String {
        let data = Array(bytes)
        guard data.count % 4 == 0 else {
            throw ZMQError(
                code: .invalidArgument,
                operation: "Z85.encode: \(data.count) bytes is not a multiple of 4")
        }
        if data.isEmpty { return "" }
        // Five characters per four bytes, plus libzmq's terminating NUL.
        var text = [CChar](repeating: 0, count: data.count / 4 * 5 + 1)
        let encoded = data.withUnsafeBufferPointer { input in
            text.withUnsafeMutableBufferPointer { output in
                zmq_z85_encode(output.baseAddress, input.baseAddress, input.count)
            }
        }
        guard encoded != nil else { throw ZMQError.current("zmq_z85_encode") }
        return String(decoding: text.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes Z85 `text` (a multiple of 5 characters from the Z85 alphabet) to bytes.
    /// Throws ``ZMQErrorCode/invalidArgument`` for any other length or an invalid character.
    public static func decode(_ text: String) throws(ZMQError) -> [UInt8] {
        let characters = Array(text.utf8)
        guard characters.count % 5 == 0 else {
            throw ZMQError(
                code: .invalidArgument,
                operation: "Z85.decode: \(characters.count) characters is not a multiple of 5")
        }
        if characters.isEmpty { return [] }
        // libzmq reads up to a NUL, so an embedded one would silently shorten the input.
        guard !characters.contains(0) else {
            throw ZMQError(code: .invalidArgument, operation: "Z85.decode: the text contains a NUL character")
        }
        var output = [UInt8](repeating: 0, count: characters.count / 5 * 4)
        let cString = characters.map { CChar(bitPattern: $0) } + [0]
        let decoded = cString.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { buffer in
                zmq_z85_decode(buffer.baseAddress, input.baseAddress)
            }
        }
        guard decoded != nil else {
            throw ZMQError(code: .invalidArgument, operation: "Z85.decode: the text is not valid Z85")
        }
        return output
    }
}

/// A CURVE long-term key pair: 32-byte public and secret keys.
///
/// The keys are raw bytes, as the `curve*Key` socket options take them; ``publicKeyZ85``
/// and ``secretKeyZ85`` give the 40-character text form for configuration files.
public struct CurveKeyPair: Sendable, Hashable {
    /// The public key, 32 bytes: give it to peers.
    public let publicKey: [UInt8]
    /// The secret key, 32 bytes: keep it private.
    public let secretKey: [UInt8]

    /// The number of bytes in a CURVE key.
    public static let keySize = 32

    /// A new random key pair (`zmq_curve_keypair`).
    /// Throws ``ZMQErrorCode/notSupported`` when libzmq was built without CURVE.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        let rc = publicText.withUnsafeMutableBufferPointer { publicBuffer in
            secretText.withUnsafeMutableBufferPointer { secretBuffer in
                zmq_curve_keypair(publicBuffer.baseAddress, secretBuffer.baseAddress)
            }
        }
        guard rc == 0 else { throw ZMQError.current("zmq_curve_keypair") }
        return CurveKeyPair(
            validatedPublicKey: try Z85.decode(text(of: publicText)),
            secretKey: try Z85.decode(text(of: secretText)))
    }

    /// The key pair whose secret key is `secretKey` (32 bytes); the public key is derived from it
    /// (`zmq_curve_public`). Throws ``ZMQErrorCode/invalidArgument`` for a key of another length.
    public init(secretKey: [UInt8]) throws(ZMQError) {
        guard secretKey.count == Self.keySize else {
            throw ZMQError(
                code: .invalidArgument,
                operation: "CurveKeyPair(secretKey:): \(secretKey.count) bytes, a CURVE key has 32")
        }
        let secretZ85 = try Z85.encode(secretKey)
        var publicText = [CChar](repeating: 0, count: 41)
        let rc = publicText.withUnsafeMutableBufferPointer { publicBuffer in
            zmq_curve_public(publicBuffer.baseAddress, secretZ85)
        }
        guard rc == 0 else { throw ZMQError.current("zmq_curve_public") }
        self.init(validatedPublicKey: try Z85.decode(Self.text(of: publicText)), secretKey: secretKey)
    }

    /// The key pair whose secret key is the 40-character Z85 text `secretKeyZ85`.
    public init(secretKeyZ85: String) throws(ZMQError) {
        try self.init(secretKey: try Z85.decode(secretKeyZ85))
    }

    private init(validatedPublicKey: [UInt8], secretKey: [UInt8]) {
        self.publicKey = validatedPublicKey
        self.secretKey = secretKey
    }

    /// The public key as 40 characters of Z85.
    public var publicKeyZ85: String {
        // A 32-byte key always encodes.
        try! Z85.encode(publicKey)
    }

    /// The secret key as 40 characters of Z85.
    public var secretKeyZ85: String {
        try! Z85.encode(secretKey)
    }

    private static func text(of buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension CurveKeyPair: CustomStringConvertible {
    /// Shows the public key only, so a key pair can be logged without leaking its secret.
    public var description: String { "CurveKeyPair(public: \(publicKeyZ85))" }
}
