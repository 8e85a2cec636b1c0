// CURVE key files on disk: writing a key pair (keygen), reading a secret key file and a broker's public key.

import Foundation
import ZeroMQ

/// A key directory: `secret.key` (mode 0600), `public.key` and, on a broker, `authorized_keys`.
public struct KeyDirectory: Sendable, Equatable {
    public let path: String

    public init(path: String) { self.path = path }

    /// `~/.lancompute`, or `$LANCOMPUTE_HOME` when set (tests and several identities on one machine).
    public static var userDefault: KeyDirectory {
        if let home = ProcessInfo.processInfo.environment["LANCOMPUTE_HOME"], !home.isEmpty {
            return KeyDirectory(path: home)
        }
        return KeyDirectory(path: (NSHomeDirectory() as NSString).appendingPathComponent(".lancompute"))
    }

    public var secretKeyPath: String { (path as NSString).appendingPathComponent("secret.key") }
    public var publicKeyPath: String { (path as NSString).appendingPathComponent("public.key") }
    public var authorizedKeysPath: String { (path as NSString).appendingPathComponent("authorized_keys") }
    /// On a paired machine: the public key of the broker it paired with (`lancompute worker --pair`).
    public var brokerKeyPath: String { (path as NSString).appendingPathComponent("broker.key") }

    /// The key pair in `secret.key`, or a new one (not yet written: see ``save(_:)``) when the
    /// directory has none, so that a pairing that fails leaves nothing behind.
    public func keyPairOrNew() throws(KeyError) -> (pair: CurveKeyPair, isNew: Bool) {
        if FileManager.default.fileExists(atPath: secretKeyPath) { return (try KeyFile.readSecret(at: secretKeyPath), false) }
        do { return (try CurveKeyPair.generate(), true) } catch { throw KeyError("LC2070: cannot make a CURVE key pair: \(error)") }
    }

    /// Writes the paired broker's public key to `broker.key` (0644; the directory made 0700 if new).
    public func storeBrokerKey(_ key: [UInt8]) throws(KeyError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyError("LC2070: cannot create the key directory \(path): \(error.localizedDescription)")
        }
        let text: String
        do { text = try Z85.encode(key) } catch { throw KeyError("LC2070: cannot encode the broker's key: \(error)") }
        let temporary = brokerKeyPath + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        try Self.write(text + "\n", to: temporary, mode: 0o644)
        guard rename(temporary, brokerKeyPath) == 0 else {
            throw KeyError("LC2070: cannot write \(brokerKeyPath): \(String(cString: strerror(errno)))")
        }
    }

    /// The stored broker key, or nil when this machine never paired.
    public var storedBrokerKey: [UInt8]? {
        guard FileManager.default.fileExists(atPath: brokerKeyPath) else { return nil }
        return try? KeyFile.publicKey(brokerKeyPath)
    }

    /// Writes a new key pair: `secret.key` readable by its owner only (0600), `public.key` by all
    /// (0644); the directory is made 0700 if it does not exist. Refuses to replace an existing
    /// key unless `force`: a replaced key locks the machine out of every broker that knew it.
    public func generate(force: Bool) throws(KeyError) -> CurveKeyPair {
        let manager = FileManager.default
        if !force {
            for existing in [secretKeyPath, publicKeyPath] where manager.fileExists(atPath: existing) {
                throw KeyError("LC2070: \(existing) exists; pass --force to replace it (brokers that authorized the old key will refuse the new one)")
            }
        }
        do {
            try manager.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyError("LC2070: cannot create the key directory \(path): \(error.localizedDescription)")
        }
        let pair: CurveKeyPair
        do { pair = try CurveKeyPair.generate() } catch { throw KeyError("LC2070: cannot make a CURVE key pair: \(error)") }
        try write(pair)
        return pair
    }

    /// Writes `pair` as `secret.key` (0600) and `public.key` (0644), the directory made 0700 if new.
    public func save(_ pair: CurveKeyPair) throws(KeyError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyError("LC2070: cannot create the key directory \(path): \(error.localizedDescription)")
        }
        try write(pair)
    }

    private func write(_ pair: CurveKeyPair) throws(KeyError) {
        let secret = """
            # LANCompute CURVE secret key. Keep it private: whoever has it is this machine to a broker.
            public-key \(pair.publicKeyZ85)
            secret-key \(pair.secretKeyZ85)

            """
        try Self.write(secret, to: secretKeyPath, mode: 0o600)
        try Self.write(pair.publicKeyZ85 + "\n", to: publicKeyPath, mode: 0o644)
    }

    /// Writes `text` to a new file created with `mode`, so the secret is never readable by others,
    /// not even for a moment.
    private static func write(_ text: String, to path: String, mode: mode_t) throws(KeyError) {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw KeyError("LC2070: cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // The umask may have taken bits away from a public file: set the mode it is meant to have.
        fchmod(fd, mode)
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw KeyError("LC2070: cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}

/// Reading keys from files and from the command line.
public enum KeyFile {
    /// The key pair in a `secret.key` file (the `secret-key` line; a bare 40-character key also works).
    /// Refuses a file others may read: a leaked secret key is this machine's identity.
    public static func readSecret(at path: String) throws(KeyError) -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw KeyError("LC2070: cannot read the secret key \(path): \(String(cString: strerror(errno))); make one with 'lancompute keygen'")
        }
        if info.st_mode & 0o077 != 0 {
            throw KeyError("LC2070: the secret key \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw KeyError("LC2070: cannot read the secret key \(path)")
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = line.split(whereSeparator: \.isWhitespace)
            guard let first = words.first, !first.hasPrefix("#") || first.utf8.count == 40 else { continue }
            let candidate: Substring
            if first == "secret-key", words.count == 2 { candidate = words[1] } else if words.count == 1 { candidate = first } else { continue }
            do {
                return try CurveKeyPair(secretKeyZ85: String(candidate))
            } catch {
                throw KeyError("LC2070: \(path):\(number + 1): not a 40-character Z85 secret key")
            }
        }
        throw KeyError("LC2070: \(path) holds no secret-key line; make a key with 'lancompute keygen'")
    }

    /// A public key given as its 40 Z85 characters, or as the path of a file holding it (`public.key`).
    public static func publicKey(_ keyOrPath: String) throws(KeyError) -> [UInt8] {
        if let key = decodePublic(keyOrPath) { return key }
        guard FileManager.default.fileExists(atPath: keyOrPath) else {
            throw KeyError("LC2070: '\(keyOrPath)' is neither a 40-character Z85 public key nor a file")
        }
        guard let text = try? String(contentsOfFile: keyOrPath, encoding: .utf8) else {
            throw KeyError("LC2070: cannot read the public key file \(keyOrPath)")
        }
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            // A public.key, or the first word of an authorized_keys line (a key may start with #).
            let word = trimmed.split(whereSeparator: \.isWhitespace)[0]
            if let key = decodePublic(String(word)) { return key }
            if trimmed.hasPrefix("#") { continue }
            throw KeyError("LC2070: \(keyOrPath) does not start with a 40-character Z85 public key")
        }
        throw KeyError("LC2070: \(keyOrPath) holds no public key")
    }

    /// The 32 bytes of a 40-character Z85 key; nil for anything else.
    static func decodePublic(_ text: String) -> [UInt8]? {
        guard text.utf8.count == 40, let bytes = try? Z85.decode(text), bytes.count == CurveKeyPair.keySize else { return nil }
        return bytes
    }
}

/// Why a key could not be written or read: the message carries its LC code and says what to do.
public struct KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
