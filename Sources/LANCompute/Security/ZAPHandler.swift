// The broker's ZAP handler (ZeroMQ RFC 27): an actor on inproc://zeromq.zap.01 that lets in a CURVE key only where its role may go.

import Logging
import ZeroMQ

/// The ZAP domain each CURVE server socket of the broker sets (`ZMQ_ZAP_DOMAIN`): the handler decides by it.
public enum ZAPDomain: String, Sendable, CaseIterable {
    case dispatch = "lancompute.dispatch"
    case events = "lancompute.events"
    case aggregator = "lancompute.aggregator"
    case source = "lancompute.source"

    /// The domain of a socket role that binds; nil for roles that only connect.
    public init?(role: SocketRole) {
        switch role {
        case .dispatch: self = .dispatch
        case .events: self = .events
        case .aggregator: self = .aggregator
        case .source: self = .source
        case .worker, .sink, .client, .pipe, .pairing: return nil
        }
    }

    /// The roles whose keys may connect to this socket at all. The dispatch ROUTER lets every role
    /// in, and the broker checks each message against the sender's role (a READY only from a worker
    /// key, `mmi.feed` and stage requests only from a producer).
    public var admits: Set<PeerRole> {
        switch self {
        case .dispatch, .events: Set(PeerRole.allCases)
        case .aggregator: [.worker]
        case .source: [.producer]
        }
    }
}

/// The handler's decision, kept apart from sockets so it can be tested on its own.
public enum ZAPDecision: Equatable, Sendable {
    /// 200: the User-Id is the key's Z85 text, which the broker reads back from each message.
    case allow(userID: String)
    /// 400, with the reason given back to libzmq (and to the broker's log and events).
    case deny(reason: String)

    public static func decide(domain: String, mechanism: String, credentials: [[UInt8]], keys: AuthorizedKeys) -> ZAPDecision {
        guard let known = ZAPDomain(rawValue: domain) else { return .deny(reason: "unknown ZAP domain '\(domain)'") }
        guard mechanism == "CURVE", credentials.count == 1, credentials[0].count == CurveKeyPair.keySize,
              let key = try? Z85.encode(credentials[0]) else {
            return .deny(reason: "mechanism \(mechanism) is not CURVE")
        }
        guard let entry = keys.entry(for: key) else { return .deny(reason: "key \(key) is not in authorized_keys") }
        guard known.admits.contains(entry.role) else {
            return .deny(reason: "key \(key)\(entry.name.isEmpty ? "" : " (\(entry.name))") is a \(entry.role.rawValue) key, which may not connect to \(domain)")
        }
        return .allow(userID: key)
    }
}

/// Commands to the ZAP actor.
enum ZAPCommand: ActorMessage, Equatable {
    /// Replace the authorized keys (after a reload of authorized_keys).
    case keys(AuthorizedKeys)

    var frames: [[UInt8]] {
        switch self {
        case .keys(let keys): [[1]] + keys.entries.map { Array($0.text.utf8) }
        }
    }

    init(frames: [[UInt8]]) throws {
        guard frames.first == [1] else { throw WireError("unknown ZAP command") }
        let text = frames.dropFirst().map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
        self = .keys(try AuthorizedKeys(parsing: text, file: "the ZAP command"))
    }
}

/// What the ZAP actor tells the broker: a peer it refused.
enum ZAPEvent: ActorMessage, Equatable {
    case refused(domain: String, address: String, reason: String)

    var frames: [[UInt8]] {
        switch self {
        case .refused(let domain, let address, let reason): [Array(domain.utf8), Array(address.utf8), Array(reason.utf8)]
        }
    }

    init(frames: [[UInt8]]) throws {
        guard frames.count == 3 else { throw WireError("a ZAP event has 3 frames, not \(frames.count)") }
        let text = frames.map { String(decoding: $0, as: UTF8.self) }
        self = .refused(domain: text[0], address: text[1], reason: text[2])
    }
}

/// The ZAP handler: binds `inproc://zeromq.zap.01` in the broker's context and answers libzmq's
/// requests for every CURVE handshake. Started before any CURVE server socket exists, so no
/// connection is ever accepted without it; the server sockets also set `ZMQ_ZAP_ENFORCE_DOMAIN`,
/// so were it gone, libzmq would refuse everyone rather than let everyone in.
struct ZAPHandler: Sendable {
    static let endpoint = "inproc://zeromq.zap.01"

    let context: Context
    let keys: AuthorizedKeys
    let logger: Logger

    func start() throws -> ActorThread<ZAPCommand, ZAPEvent> {
        try ActorThread(name: "lancompute-zap", context: context) { pipe in try self.run(pipe) }
    }

    private func run(_ pipe: ActorPipe<ZAPCommand, ZAPEvent>) throws {
        let rep = try SocketFactory(context: context).socket(.zapHandler)
        try rep.bind(Self.endpoint)
        try pipe.signalReady()
        var keys = self.keys
        let loop = PollLoop()
        loop.register(rep) { _ in
            var answered = 0
            while answered < 100, let request = try rep.tryReceiveMultipart() {
                answered += 1
                try rep.send(multipart: Self.answer(request, keys: keys) { domain, address, reason in
                    try? pipe.send(.refused(domain: domain, address: address, reason: reason))
                })
            }
        }
        pipe.attach(to: loop) { command in
            switch command {
            case .keys(let fresh): keys = fresh
            }
        }
        try loop.run()
        rep.close()
    }

    /// The reply frames for one ZAP request (RFC 27: version, request id, status code, status text,
    /// user id, metadata); `refused` hears of every denial.
    static func answer(_ request: [[UInt8]], keys: AuthorizedKeys, refused: (String, String, String) -> Void) -> [[UInt8]] {
        let requestID = request.count > 1 ? request[1] : []
        func reply(_ code: String, _ text: String, _ user: String) -> [[UInt8]] {
            [Array("1.0".utf8), requestID, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        // version, request id, domain, address, routing id, mechanism, credentials...
        guard request.count >= 6, request[0] == Array("1.0".utf8) else {
            refused("", "", "malformed ZAP request")
            return reply("500", "malformed ZAP request", "")
        }
        let text = { (index: Int) in String(decoding: request[index], as: UTF8.self) }
        let domain = text(2)
        let address = text(3)
        switch ZAPDecision.decide(domain: domain, mechanism: text(5), credentials: Array(request.dropFirst(6)), keys: keys) {
        case .allow(let user):
            return reply("200", "OK", user)
        case .deny(let reason):
            refused(domain, address, reason)
            return reply("400", reason, "")
        }
    }
}
