// Pairing over ZeroMQ: the head's ROUTER loop around PairingHead, and the worker's DEALER run of PairingWorker.

import Foundation
import ZeroMQ

/// `lancompute pair`: serves one code on the pairing port until a worker proves it, the code
/// expires or its tries are used up. Runs on the calling thread, which owns the socket.
public struct PairingListener: Sendable {
    public static let defaultPort: UInt16 = 5671

    public let keys: KeyDirectory
    public let keyPair: CurveKeyPair
    public let code: PairingCode
    public let headName: String
    /// The name to authorize the worker under instead of the one it sends.
    public let nameOverride: String?
    public let endpoint: String
    public let lifetime: Duration
    public let factory: SocketFactory

    public init(keys: KeyDirectory, keyPair: CurveKeyPair, code: PairingCode = .random(), headName: String, nameOverride: String? = nil,
                endpoint: String, lifetime: Duration, factory: SocketFactory = SocketFactory()) {
        self.keys = keys
        self.keyPair = keyPair
        self.code = code
        self.headName = headName
        self.nameOverride = nameOverride
        self.endpoint = endpoint
        self.lifetime = lifetime
        self.factory = factory
    }

    /// What a successful pairing wrote.
    public struct Authorized: Sendable, Equatable {
        public let entry: AuthorizedKey
        public let address: String?
    }

    /// Binds, calls `onReady` with the bound endpoint, then serves. Returns the entry written to
    /// authorized_keys; throws LC2077 when the code expired or was used up, LC2078 when the port cannot be bound.
    public func run(onReady: (String) -> Void, note: (String) -> Void) throws(RuntimeError) -> Authorized {
        let socket: Socket
        do { socket = try factory.socket(.pairingHead) } catch { throw RuntimeError(.pairingNoAnswer, "cannot make the pairing socket: \(error)") }
        defer { socket.close() }
        do { try factory.bind(socket, as: .pairingHead, to: endpoint) } catch {
            throw RuntimeError(.pairingNoAnswer, "cannot bind the pairing port \(endpoint): \(error)")
        }
        onReady((try? socket.lastEndpoint) ?? endpoint)
        var head = PairingHead(code: code, publicKey: keyPair.publicKey, name: headName, expiresAt: .now + lifetime)
        var addresses: [[UInt8]: String] = [:]
        while true {
            let ready: Bool
            do { ready = try socket.poll(.in, timeout: .milliseconds(200)).contains(.in) } catch {
                throw RuntimeError(.pairingNoAnswer, "the pairing socket failed: \(error)")
            }
            var actions: [PairingHead.Action] = []
            if ready, let received = try? socket.tryReceiveMultipart(property: "Peer-Address"), received.frames.count >= 2 {
                let peer = received.frames[0]
                if let address = received.property { addresses[peer] = address }
                actions = head.receive(from: peer, frames: Array(received.frames.dropFirst()), at: .now)
            }
            actions += head.tick(at: .now)
            for action in actions {
                switch action {
                case .send(let peer, let message):
                    // A peer that went away is no reason to stop serving the code.
                    _ = try? socket.trySend(multipart: [peer] + message.frames)
                case .note(let text):
                    note(text)
                case .finished(let error):
                    throw error
                case .authorize(let peer, let name, let key):
                    let address = addresses[peer]
                    do {
                        let entry = try authorize(key: key, name: nameOverride ?? name)
                        _ = try? socket.trySend(multipart: [peer] + PairingMessage.done(name: entry.name).frames)
                        Self.awaitReceived(from: peer, on: socket)
                        return Authorized(entry: entry, address: address)
                    } catch {
                        _ = try? socket.trySend(multipart: [peer] + PairingMessage.refused(
                            code: RuntimeErrorCode.authorizedKeysInvalid.code, text: "the head cannot write its authorized_keys").frames)
                        throw RuntimeError(.authorizedKeysInvalid, "\(error)".replacingOccurrences(of: "LC2071: ", with: ""))
                    }
                }
            }
        }
    }

    /// Waits (a second at most) for the worker's `received`: a process that exits right after a send
    /// may take the message with it, since nothing terminates the context to flush it.
    private static func awaitReceived(from peer: [UInt8], on socket: Socket) {
        let deadline = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < deadline {
            guard (try? socket.poll(.in, timeout: .milliseconds(100)).contains(.in)) == true,
                  let frames = try? socket.tryReceiveMultipart(), frames.first == peer else { continue }
            if (try? PairingMessage(frames: Array(frames.dropFirst()))) == .received { return }
        }
    }

    /// Appends the key with role worker under `name`, or `name-2`, `name-3`... when the name is taken;
    /// a key already there is left as it is (a worker that paired before and lost the answer).
    private func authorize(key: [UInt8], name: String) throws(AuthorizedKeysError) -> AuthorizedKey {
        let path = keys.authorizedKeysPath
        let z85: String
        do { z85 = try Z85.encode(key) } catch { throw AuthorizedKeysError(file: path, line: 0, problem: "cannot encode the worker's key: \(error)") }
        let current = try AuthorizedKeys.load(path: path)
        if let existing = current.entry(for: z85) { return existing }
        let base = Self.usableName(name)
        let taken = Set(current.entries.map(\.name))
        var candidate = base
        var suffix = 2
        while taken.contains(candidate) {
            candidate = "\(base)-\(suffix)"
            suffix += 1
        }
        let entry = AuthorizedKey(key: z85, name: candidate, role: .worker)
        try AuthorizedKeysEditor.add(entry, to: path)
        return entry
    }

    /// A name authorized_keys accepts: one word of letters, digits, `-`, `_`, `.`, not a role, not starting with `#`.
    static func usableName(_ name: String) -> String {
        var word = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "-" }.prefix(PairingMessage.maxNameLength))
        if word.isEmpty { word = "paired" } else if PeerRole(rawValue: word) != nil || word.hasPrefix("-") { word = "paired-" + word }
        return word
    }
}

/// A new worker's side: one run against the head's pairing port.
public enum PairingClient {
    /// Runs the exchange with the head at `endpoint`; returns the broker's key once the head
    /// confirmed. Nothing is written here: the caller stores the key. Waits up to `timeout` for
    /// each answer.
    public static func pair(endpoint: String, code: PairingCode, keyPair: CurveKeyPair, name: String,
                            expectedFingerprint: String? = nil, timeout: Duration = .seconds(10),
                            factory: SocketFactory = SocketFactory()) throws(RuntimeError) -> PairingWorker.Paired {
        let socket: Socket
        do {
            socket = try factory.socket(.pairingWorker)
            try socket.connect(endpoint)
        } catch {
            throw RuntimeError(.pairingNoAnswer, "cannot connect to the pairing port \(endpoint): \(error)")
        }
        defer { socket.close() }
        var worker = PairingWorker(code: code, publicKey: keyPair.publicKey, name: name, expectedFingerprint: expectedFingerprint)
        var outgoing: PairingMessage? = worker.start
        var confirmed = false
        while true {
            if let message = outgoing {
                do { try socket.send(multipart: message.frames) } catch {
                    throw RuntimeError(.pairingNoAnswer, "cannot send to the pairing port \(endpoint): \(error)")
                }
                outgoing = nil
            }
            let frames: [[UInt8]]
            do {
                guard try socket.poll(.in, timeout: timeout).contains(.in) else {
                    throw RuntimeError(.pairingNoAnswer, confirmed
                        ? "the head at \(endpoint) did not acknowledge the confirmation within \(timeout); run 'lancompute keys list' there to see whether this machine was added"
                        : "no pairing service answered at \(endpoint) within \(timeout); run 'lancompute pair' on the head and type the code it prints")
                }
                frames = try socket.receiveMultipart()
            } catch let error as RuntimeError {
                throw error
            } catch {
                throw RuntimeError(.pairingNoAnswer, "the pairing socket failed: \(error)")
            }
            let message: PairingMessage
            do { message = try PairingMessage(frames: frames) } catch {
                throw RuntimeError(.pairingFailed, "the pairing port \(endpoint) sent a malformed message: \(error)")
            }
            switch worker.receive(message) {
            case .send(let next):
                outgoing = next
            case .confirm(let next):
                outgoing = next
                confirmed = true
            case .failed(let error, let last):
                if let last, (try? socket.trySend(multipart: last.frames)) == true {
                    // The head answers `abort`; once it has, the abort was delivered and this
                    // process may exit (a second at most).
                    _ = try? socket.poll(.in, timeout: .seconds(1))
                }
                throw error
            case .paired(let paired):
                _ = try? socket.trySend(multipart: PairingMessage.received.frames)
                return paired
            }
        }
    }
}
