// Pairing without sockets: the one-time code, the confirmation keys, and the head's and the worker's state machines.

import Crypto
import Foundation

/// A one-time pairing code: six decimal digits, shown and typed as `428-913`.
public struct PairingCode: Sendable, Equatable, CustomStringConvertible {
    /// The six ASCII digits: CPace's password.
    public let digits: String

    /// A fresh code from the system's cryptographic random number generator.
    public static func random() -> PairingCode {
        var generator = SystemRandomNumberGenerator()
        let number = UInt32.random(in: 0..<1_000_000, using: &generator)
        let text = String(number)
        return PairingCode(checkedDigits: String(repeating: "0", count: 6 - text.count) + text)
    }

    private init(checkedDigits: String) { digits = checkedDigits }

    /// Six digits, with or without the dash or a space in the middle; nil for anything else.
    public init?(parsing text: String) {
        let kept = text.filter { $0 != "-" && $0 != " " }
        guard kept.count == 6, kept.allSatisfy({ $0.isASCII && $0.isNumber }), text.count <= 7 else { return nil }
        digits = kept
    }

    public var description: String { "\(digits.prefix(3))-\(digits.suffix(3))" }
    var password: [UInt8] { Array(digits.utf8) }
}

/// The keys both sides derive from CPace's session key, and the two confirmation tags.
///
/// Each tag is an HMAC-SHA-512, under a key of its own for each direction, of the transcript's hash
/// and the sender's long-term CURVE public key: a tag verifies only for a peer that reached the
/// same session key (the same code, the same shares and names) and binds the key it carries.
struct PairingConfirmation {
    /// CPace's channel identifier: ties the generator to this protocol.
    static let channel = Array("lancompute pairing/1".utf8)

    private let headKey: SymmetricKey
    private let workerKey: SymmetricKey
    private let transcriptHash: [UInt8]

    init(sessionKey: [UInt8], sessionID: [UInt8], worker: (share: [UInt8], name: String), head: (share: [UInt8], name: String)) {
        let key = SymmetricKey(data: sessionKey)
        headKey = SymmetricKey(data: Array(HMAC<SHA512>.authenticationCode(for: Array("lancompute pairing/1 head".utf8), using: key)))
        workerKey = SymmetricKey(data: Array(HMAC<SHA512>.authenticationCode(for: Array("lancompute pairing/1 worker".utf8), using: key)))
        transcriptHash = Array(SHA512.hash(data: CPace.lengthValue(
            Self.channel, sessionID, worker.share, Array(worker.name.utf8), head.share, Array(head.name.utf8))))
    }

    func headTag(publicKey: [UInt8]) -> [UInt8] { tag(headKey, publicKey) }
    func workerTag(publicKey: [UInt8]) -> [UInt8] { tag(workerKey, publicKey) }

    /// Compares in constant time.
    func headTagIsValid(_ tag: [UInt8], publicKey: [UInt8]) -> Bool { isValid(tag, headKey, publicKey) }
    func workerTagIsValid(_ tag: [UInt8], publicKey: [UInt8]) -> Bool { isValid(tag, workerKey, publicKey) }

    private func tag(_ key: SymmetricKey, _ publicKey: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA512>.authenticationCode(for: CPace.lengthValue(transcriptHash, publicKey), using: key))
    }

    private func isValid(_ tag: [UInt8], _ key: SymmetricKey, _ publicKey: [UInt8]) -> Bool {
        HMAC<SHA512>.isValidAuthenticationCode(tag, authenticating: CPace.lengthValue(transcriptHash, publicKey), using: key)
    }
}

/// The head's side (`lancompute pair`): answers up to `attempts` runs while the code is valid and
/// asks its shell to authorize the first worker that proves the code. No sockets, no clock: the
/// shell feeds it messages with the time, and carries out the actions it returns.
public struct PairingHead {
    public enum Action: Equatable, Sendable {
        /// Send `message` to the peer with this routing id.
        case send(to: [UInt8], PairingMessage)
        /// A worker proved the code: authorize `key` (as `name`, or a free variant of it), then
        /// answer `done` to `peer`. The run is over.
        case authorize(peer: [UInt8], name: String, key: [UInt8])
        /// Something the operator should see (a failed attempt, a malformed message).
        case note(String)
        /// The code can no longer pair anyone.
        case finished(RuntimeError)
    }

    private struct Session {
        let confirmation: PairingConfirmation
        let workerName: String
        let answeredAt: ContinuousClock.Instant
    }

    public let code: PairingCode
    private let keyPair: (publicKey: [UInt8], name: String)
    private let expiry: ContinuousClock.Instant
    private let sessionTimeout: Duration
    public private(set) var attemptsLeft: Int
    private let initialAttempts: Int
    private var sessions: [[UInt8]: Session] = [:]
    private var over = false

    public init(code: PairingCode, publicKey: [UInt8], name: String, expiresAt: ContinuousClock.Instant,
                attempts: Int = 3, sessionTimeout: Duration = .seconds(10)) {
        self.code = code
        keyPair = (publicKey, String(name.utf8.prefix(PairingMessage.maxNameLength)) ?? "head")
        expiry = expiresAt
        self.sessionTimeout = sessionTimeout
        attemptsLeft = attempts
        initialAttempts = attempts
    }

    public var isOver: Bool { over }

    /// A message (frames after the routing id) from `peer`.
    public mutating func receive(from peer: [UInt8], frames: [[UInt8]], at now: ContinuousClock.Instant) -> [Action] {
        guard !over else { return [] }
        let message: PairingMessage
        do { message = try PairingMessage(frames: frames) } catch {
            return [.note("ignored a malformed pairing message: \(error)")]
        }
        switch message {
        case .start(let sessionID, let share, let name):
            if now >= expiry {
                return [.send(to: peer, .refused(code: RuntimeErrorCode.pairingCodeUnusable.code, text: "the pairing code has expired; run 'lancompute pair' on the head for a new one"))]
            }
            guard attemptsLeft > 0 else {
                return [.send(to: peer, .refused(code: RuntimeErrorCode.pairingCodeUnusable.code, text: "the pairing code was tried three times; run 'lancompute pair' on the head for a new one"))]
            }
            // The attempt counts before anything is computed: every answer gives the peer one guess.
            attemptsLeft -= 1
            sessions[peer] = nil
            guard let cpace = CPace(password: code.password, channel: PairingConfirmation.channel, sessionID: sessionID),
                  let sessionKey = cpace.sessionKey(peerShare: share, sessionID: sessionID,
                                                    initiator: (share, Array(name.utf8)), responder: (cpace.share, Array(keyPair.name.utf8)))
            else {
                return [.note("pairing attempt from '\(name)' refused: its share is not a valid point (\(attemptsLeft) left)")] + exhaustedIfDone()
            }
            let confirmation = PairingConfirmation(sessionKey: sessionKey, sessionID: sessionID, worker: (share, name), head: (cpace.share, keyPair.name))
            sessions[peer] = Session(confirmation: confirmation, workerName: name, answeredAt: now)
            return [.send(to: peer, .answer(share: cpace.share, name: keyPair.name, publicKey: keyPair.publicKey,
                                            tag: confirmation.headTag(publicKey: keyPair.publicKey)))]
        case .confirm(let publicKey, let tag):
            guard let session = sessions.removeValue(forKey: peer) else { return [.note("ignored a confirmation outside a pairing run")] }
            guard session.confirmation.workerTagIsValid(tag, publicKey: publicKey) else {
                return [.send(to: peer, .refused(code: RuntimeErrorCode.pairingFailed.code, text: "the confirmation did not verify")),
                        .note("pairing attempt from '\(session.workerName)' failed: its confirmation did not verify (\(attemptsLeft) left)")]
                    + exhaustedIfDone()
            }
            over = true
            return [.authorize(peer: peer, name: session.workerName, key: publicKey)]
        case .abort:
            guard let session = sessions.removeValue(forKey: peer) else { return [] }
            let left = "\(attemptsLeft) \(attemptsLeft == 1 ? "try" : "tries") left"
            return [.send(to: peer, .refused(code: RuntimeErrorCode.pairingFailed.code, text: "wrong code (\(left))")),
                    .note("pairing attempt from '\(session.workerName)' failed: wrong code (\(left))")]
                + exhaustedIfDone()
        case .received:
            return []
        case .answer, .done, .refused:
            return [.note("ignored a '\(frames.count > 1 ? String(decoding: frames[1], as: UTF8.self) : "")' message: only a head sends it")]
        }
    }

    /// Drops runs whose confirmation is late, and ends when the code cannot pair anyone any more.
    public mutating func tick(at now: ContinuousClock.Instant) -> [Action] {
        guard !over else { return [] }
        var actions: [Action] = []
        for (peer, session) in sessions where now - session.answeredAt >= sessionTimeout {
            sessions[peer] = nil
            actions.append(.note("pairing attempt from '\(session.workerName)' gave no confirmation within \(sessionTimeout)"))
        }
        if now >= expiry && sessions.isEmpty {
            over = true
            let used = initialAttempts - attemptsLeft
            let tries = used == 0 ? "unused" : "after \(used) failed \(used == 1 ? "try" : "tries")"
            return actions + [.finished(RuntimeError(.pairingCodeUnusable, "the pairing code \(code) expired \(tries); run 'lancompute pair' again for a new one"))]
        }
        return actions + exhaustedIfDone()
    }

    private mutating func exhaustedIfDone() -> [Action] {
        guard attemptsLeft == 0, sessions.isEmpty, !over else { return [] }
        over = true
        return [.finished(RuntimeError(.pairingCodeUnusable, "the pairing code \(code) was tried three times without success; run 'lancompute pair' again for a new one"))]
    }
}

/// The worker's side of a run: a start, then a confirmation once the head proved the code.
public struct PairingWorker {
    /// What the worker learned, once the head confirmed.
    public struct Paired: Sendable, Equatable {
        public let brokerKey: [UInt8]
        public let headName: String
        /// The name the head authorized this machine under.
        public let authorizedName: String
    }

    public enum Step: Equatable, Sendable {
        case send(PairingMessage)
        /// The head proved the code; send `message` (the confirmation) and wait for `done`.
        case confirm(PairingMessage)
        /// Send `abort` (when given) and stop with the error.
        case failed(RuntimeError, send: PairingMessage?)
        case paired(Paired)
    }

    private let code: PairingCode
    private let publicKey: [UInt8]
    private let name: String
    private let expectedFingerprint: String?
    private let sessionID: [UInt8]
    private let cpace: CPace?
    private var pending: (brokerKey: [UInt8], headName: String)?

    /// `expectedFingerprint`: the key fingerprint a discovered broker announced; the head's key must have it.
    public init(code: PairingCode, publicKey: [UInt8], name: String, expectedFingerprint: String? = nil) {
        self.code = code
        self.publicKey = publicKey
        self.name = String(name.utf8.prefix(PairingMessage.maxNameLength)) ?? "worker"
        self.expectedFingerprint = expectedFingerprint.flatMap { $0.isEmpty ? nil : $0 }
        var generator = SystemRandomNumberGenerator()
        sessionID = (0..<CPace.sessionIDSize).map { _ in UInt8.random(in: 0...255, using: &generator) }
        cpace = CPace(password: code.password, channel: PairingConfirmation.channel, sessionID: sessionID)
    }

    public var start: PairingMessage {
        .start(sessionID: sessionID, share: cpace?.share ?? [], name: name)
    }

    public mutating func receive(_ message: PairingMessage) -> Step {
        switch message {
        case .answer(let share, let headName, let brokerKey, let tag):
            guard pending == nil, let cpace,
                  let sessionKey = cpace.sessionKey(peerShare: share, sessionID: sessionID,
                                                    initiator: (cpace.share, Array(name.utf8)), responder: (share, Array(headName.utf8)))
            else { return .failed(RuntimeError(.pairingFailed, "the head's answer is not a valid CPace share"), send: .abort) }
            let confirmation = PairingConfirmation(sessionKey: sessionKey, sessionID: sessionID, worker: (cpace.share, name), head: (share, headName))
            guard confirmation.headTagIsValid(tag, publicKey: brokerKey) else {
                return .failed(RuntimeError(.pairingFailed, "the head did not prove the code \(code): it is wrong (or the exchange was altered); nothing was written"), send: .abort)
            }
            if let expectedFingerprint, KeyFingerprint.of(brokerKey) != expectedFingerprint {
                return .failed(RuntimeError(.pairingKeyMismatch, "the head '\(headName)' holds the key \(KeyFingerprint.of(brokerKey)), but the broker announced \(expectedFingerprint); nothing was written"), send: .abort)
            }
            pending = (brokerKey, headName)
            return .confirm(.confirm(publicKey: publicKey, tag: confirmation.workerTag(publicKey: publicKey)))
        case .done(let authorizedName):
            guard let pending else { return .failed(RuntimeError(.pairingFailed, "the head answered 'done' before confirming"), send: nil) }
            return .paired(Paired(brokerKey: pending.brokerKey, headName: pending.headName, authorizedName: authorizedName))
        case .refused(let code, let text):
            let known = RuntimeErrorCode(code: code) ?? .pairingFailed
            return .failed(RuntimeError(known, "the head refused: \(text)"), send: nil)
        case .start, .confirm, .abort, .received:
            return .failed(RuntimeError(.pairingFailed, "the pairing port answered with a worker's message"), send: nil)
        }
    }
}

/// A short, stable name for a CURVE public key: the first 16 bytes of its SHA-256, in hex. The
/// broker announces it (DNS-SD TXT `key`, the beacon's key field) so a worker can tell which key it
/// should meet.
public enum KeyFingerprint {
    public static func of(_ publicKey: [UInt8]) -> String {
        Crypto.SHA256.hash(data: publicKey).prefix(16).map { String(format: "%02x", $0) }.joined()
    }
}
