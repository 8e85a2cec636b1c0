// The one place engine sockets are made: a profile per role (HWM, max message size, handshake, linger, security), and the exposure check on bind.

import ZeroMQ

/// What a socket is for in the engine; each role has its profiles below.
public enum SocketRole: String, Sendable, CaseIterable {
    /// The broker's ROUTER for MDP workers and clients.
    case dispatch
    /// The broker's XPUB feed, and the SUB sockets that read it.
    case events
    /// The aggregator's PULL of final outputs.
    case aggregator
    /// The broker's PULL of source items.
    case source
    /// A worker's sockets toward the broker and the aggregator.
    case worker
    /// The PUSH of a `push:` sink.
    case sink
    /// An MDP client's DEALER (`mmi.*` requests, stage requests).
    case client
    /// An inproc link between two threads of one process.
    case pipe
    /// Pairing: the head's ROUTER (`lancompute pair`) and a new worker's DEALER. NULL mechanism:
    /// the exchange authenticates itself (CPace), and only public keys travel.
    case pairing
}

/// How a socket is secured. A profile says it for one socket; a ``SocketFactory`` made with
/// ``CurveSetup`` keys gives CURVE to every socket of a role that crosses machines.
public enum SocketSecurity: Sendable, Equatable {
    case none
    /// A CURVE server (a socket that binds) holding the broker's key pair; every handshake goes to
    /// the ZAP handler with `domain`, and without a handler every peer is refused.
    case curveServer(keyPair: CurveKeyPair, domain: String)
    /// A CURVE client that talks only to the server whose public key is `serverKey`.
    case curveClient(serverKey: [UInt8], keyPair: CurveKeyPair)
}

/// The keys a process holds: a broker serves with `server`, a worker or a command connects with `client`.
public struct CurveSetup: Sendable, Equatable {
    /// The broker's own key pair: its sockets that bind become CURVE servers.
    public var server: CurveKeyPair?
    /// This process's key pair and the broker's public key: its sockets that connect become CURVE clients.
    public var client: (keyPair: CurveKeyPair, serverKey: [UInt8])?

    public init(server: CurveKeyPair? = nil, client: (keyPair: CurveKeyPair, serverKey: [UInt8])? = nil) {
        self.server = server
        self.client = client
    }

    public static func == (lhs: CurveSetup, rhs: CurveSetup) -> Bool {
        lhs.server == rhs.server && lhs.client?.keyPair == rhs.client?.keyPair && lhs.client?.serverKey == rhs.client?.serverKey
    }
}

/// Every option the engine sets on a socket, in one value per role and socket type.
///
/// The values are the ones each socket had before profiles existed; libzmq's defaults are
/// written out (HWM 1000, handshake 30 s) so that a profile reads as the whole truth.
public struct SocketProfile: Sendable, Equatable {
    public var role: SocketRole
    public var type: SocketType
    /// Messages queued per peer before sends block or fail; 0: no limit (`ZMQ_SNDHWM`).
    public var sendHighWaterMark: Int = 1000
    /// Messages queued per peer on the receiving side; 0: no limit (`ZMQ_RCVHWM`).
    public var receiveHighWaterMark: Int = 1000
    /// The largest message a peer may send; a larger one drops its connection; -1: no limit (`ZMQ_MAXMSGSIZE`).
    public var maxMessageSize: Int64 = -1
    /// How long a new connection may take to finish the ZMTP handshake (`ZMQ_HANDSHAKE_IVL`).
    public var handshakeInterval: Duration = .seconds(30)
    /// How long close waits for unsent messages (`ZMQ_LINGER`); delivery never relies on it.
    public var linger: Duration = .zero
    /// Queue only to completed connections (`ZMQ_IMMEDIATE`).
    public var immediate = false
    /// How long a blocking send waits before failing with `.again`; nil: forever (`ZMQ_SNDTIMEO`).
    public var sendTimeout: Duration?
    /// Fail sends to an unknown routing id instead of dropping them (`ZMQ_ROUTER_MANDATORY`).
    public var routerMandatory = false
    /// How long one TCP connect may take before libzmq gives up and tries again after its
    /// reconnect interval; nil: the system's SYN retries, which back off to minutes (`ZMQ_CONNECT_TIMEOUT`).
    public var connectTimeout: Duration?
    /// How long sent data may stay unacknowledged before the kernel drops the connection and
    /// libzmq reconnects; nil: the system's retransmission backoff, which waits longer and longer
    /// (`ZMQ_TCP_MAXRT`, `TCP_USER_TIMEOUT` on Linux). Linux also counts a receive window the peer
    /// keeps closed against it, so a peer that stops reading for that long is dropped as well.
    public var retransmitTimeout: Duration?
    public var security: SocketSecurity = .none

    public init(role: SocketRole, type: SocketType) {
        self.role = role
        self.type = type
    }

    private func with(_ change: (inout SocketProfile) -> Void) -> SocketProfile {
        var copy = self
        change(&copy)
        return copy
    }

    // MARK: The engine's profiles

    /// The handshake interval of every socket the broker binds: a connection that has not finished
    /// the ZMTP (and CURVE) handshake by then is closed, so idle or junk connections cost nothing for long.
    public static let acceptedHandshakeInterval: Duration = .seconds(2)

    /// The largest message a subscriber may send the events XPUB: a subscription is a topic such as
    /// `event.` or `metrics`, so anything larger is an attack (libzmq keeps every subscription in a trie).
    public static let subscriptionLimit: Int64 = 4096

    /// The broker's ROUTER: no HWM (credit bounds what is queued), a failed send means a gone peer.
    public static func dispatch(maxMessageSize: Int64) -> SocketProfile {
        SocketProfile(role: .dispatch, type: .router).with {
            $0.handshakeInterval = acceptedHandshakeInterval
            $0.routerMandatory = true
            $0.maxMessageSize = maxMessageSize
            $0.sendHighWaterMark = 0
            $0.receiveHighWaterMark = 0
        }
    }

    /// The broker's events XPUB (best effort: a slow subscriber loses messages at the HWM).
    public static let eventsPublisher = SocketProfile(role: .events, type: .xpub).with {
        $0.handshakeInterval = acceptedHandshakeInterval
        $0.maxMessageSize = subscriptionLimit
    }

    /// A SUB reading the events feed; `receiveHighWaterMark` nil: libzmq's 1000.
    public static func eventsSubscriber(receiveHighWaterMark: Int? = nil) -> SocketProfile {
        SocketProfile(role: .events, type: .sub).with {
            if let receiveHighWaterMark { $0.receiveHighWaterMark = receiveHighWaterMark }
        }
    }

    /// The aggregator's PULL: a deep queue, so workers rarely wait for the sink.
    public static func aggregator(maxMessageSize: Int64) -> SocketProfile {
        SocketProfile(role: .aggregator, type: .pull).with {
            $0.handshakeInterval = acceptedHandshakeInterval
            $0.receiveHighWaterMark = 10_000
            $0.maxMessageSize = maxMessageSize
        }
    }

    /// The broker's source PULL (from producers, or, `fromReader`, from its own source reader).
    /// Over inproc the queue is the sum of both ends' HWMs: with the reader's 16 batches here too,
    /// a file or generated source is read at most 32 batches (8,192 items) ahead of what the broker
    /// took; with 1000, some 260,000 items waited in the pipe, and their memory stayed with the broker.
    public static func source(maxMessageSize: Int64, fromReader: Bool = false) -> SocketProfile {
        SocketProfile(role: .source, type: .pull).with {
            $0.handshakeInterval = acceptedHandshakeInterval
            $0.receiveHighWaterMark = fromReader ? 16 : 1000
            $0.maxMessageSize = maxMessageSize
        }
    }

    /// The source reader's PUSH to the broker: a small queue, so a file is never read far ahead.
    public static let sourceReader = SocketProfile(role: .pipe, type: .push).with { $0.sendHighWaterMark = 16 }

    /// How long a worker's connect to the broker may take: a connect started while the network is
    /// cut is abandoned and started afresh, so a healed link is used within about this long (the
    /// kernel would only send its next SYN 1, 3, 7, 15 s ... after the first).
    public static let workerConnectTimeout = Duration.seconds(1)

    /// A worker's DEALER for one stage: no HWM (the broker's credit bounds the traffic).
    public static let workerStage = SocketProfile(role: .worker, type: .dealer).with {
        $0.sendHighWaterMark = 0
        $0.receiveHighWaterMark = 0
        $0.connectTimeout = workerConnectTimeout
    }

    /// A worker's PUSH of final outputs to the aggregator. Nothing else watches this connection
    /// (heartbeats travel on the stage DEALERs), so a cut that drops only it is found by TCP:
    /// after 2 s of unacknowledged outputs the connection is dropped and made again, instead of
    /// waiting out a retransmission backoff that reaches 26 s after a 30 s cut. Outputs that were
    /// in the dropped connection come back through the broker's ack timeout. The aggregator's
    /// deep queue (10,000 messages) keeps its window open unless the sink itself stalls.
    public static let workerOutputs = SocketProfile(role: .worker, type: .push).with {
        $0.sendHighWaterMark = 100_000
        $0.connectTimeout = workerConnectTimeout
        $0.retransmitTimeout = .seconds(2)
    }

    /// The worker I/O thread's PULL of results from its slot threads.
    public static let slotResults = SocketProfile(role: .pipe, type: .pull)

    /// A slot thread's wake-up PUSH to the I/O thread (the result itself is in a mailbox): a full
    /// queue of wake-ups may drop one, so the default HWM.
    public static let slotWakeUp = SocketProfile(role: .pipe, type: .push)

    /// A `push:` sink: queues only to a connected consumer, fails after a minute without one, and
    /// lingers up to 10 s so a consumer that went away cannot keep the broker from exiting.
    public static let sink = SocketProfile(role: .sink, type: .push).with {
        $0.linger = .seconds(10)
        $0.immediate = true
        $0.sendTimeout = .seconds(60)
    }

    /// An MDP client's DEALER (a worker fetches its topology with one, so it gives up on a
    /// connect as a stage DEALER does).
    public static let client = SocketProfile(role: .client, type: .dealer).with { $0.connectTimeout = workerConnectTimeout }

    /// The ZAP handler's REP on `inproc://zeromq.zap.01` (RFC 27 asks for REP: one answer per request, in order).
    public static let zapHandler = SocketProfile(role: .pipe, type: .rep)

    /// A producer's PUSH into a `pull:` source (`lancompute feed`).
    public static let feeder = SocketProfile(role: .source, type: .push)

    /// `lancompute pair`'s ROUTER: messages are a few hundred bytes, so anything larger drops the
    /// peer; a peer that does not finish its ZMTP handshake within 5 s is dropped; close lingers a
    /// second so the last answer of a one-shot exchange (`done`, `refused`) leaves before the
    /// process exits (no item ever depends on it).
    public static let pairingHead = SocketProfile(role: .pairing, type: .router).with {
        $0.maxMessageSize = Int64(PairingMessage.maxSize)
        $0.handshakeInterval = .seconds(5)
        $0.linger = .seconds(1)
        $0.sendHighWaterMark = 100
        $0.receiveHighWaterMark = 100
    }

    /// A new worker's DEALER to the head's pairing port; lingers a second so `abort` reaches the head.
    public static let pairingWorker = SocketProfile(role: .pairing, type: .dealer).with {
        $0.maxMessageSize = Int64(PairingMessage.maxSize)
        $0.handshakeInterval = .seconds(5)
        $0.linger = .seconds(1)
    }
}

/// Makes every socket of the engine from its profile, in one context, and refuses to bind a
/// socket where the network can reach it unless it is secured or `insecure` was asked for.
public struct SocketFactory: Sendable {
    public let context: Context
    /// Allow binding unsecured sockets to non-loopback addresses (`--insecure`).
    public let insecure: Bool
    /// The CURVE keys given to the sockets that cross machines; nil: none (loopback or `--insecure`).
    public let curve: CurveSetup?

    public init(context: Context = .shared, insecure: Bool = false, curve: CurveSetup? = nil) {
        self.context = context
        self.insecure = insecure
        self.curve = curve
    }

    /// `profile` with the security this factory gives its role: the broker's sockets that bind
    /// (dispatch, events, aggregator, source) serve CURVE with their ZAP domain; the sockets that
    /// connect to them (a worker's, an MDP client's, an events SUB, a feeder's PUSH) are CURVE
    /// clients. Inproc pipes and the `push:` sink (an outside consumer that knows no keys) are not.
    public func secured(_ profile: SocketProfile) -> SocketProfile {
        guard profile.security == .none, let curve else { return profile }
        var result = profile
        switch (profile.role, profile.type) {
        case (.dispatch, _), (.aggregator, _), (.events, .xpub), (.source, .pull):
            if let server = curve.server, let domain = ZAPDomain(role: profile.role) {
                result.security = .curveServer(keyPair: server, domain: domain.rawValue)
            }
        case (.worker, _), (.client, _), (.events, _), (.source, _):
            if let client = curve.client {
                result.security = .curveClient(serverKey: client.serverKey, keyPair: client.keyPair)
            }
        case (.sink, _), (.pipe, _), (.pairing, _):
            break
        }
        return result
    }

    /// A new socket with every option of `profile` set (and this factory's CURVE keys, see ``secured(_:)``).
    public func socket(_ profile: SocketProfile) throws(ZMQError) -> Socket {
        let profile = secured(profile)
        let socket = try Socket(profile.type, context: context)
        try socket.set(.sendHighWaterMark, profile.sendHighWaterMark)
        try socket.set(.receiveHighWaterMark, profile.receiveHighWaterMark)
        try socket.set(.maxMessageSize, profile.maxMessageSize)
        try socket.set(.handshakeInterval, profile.handshakeInterval)
        try socket.set(.linger, profile.linger)
        if profile.immediate { try socket.set(.immediate, true) }
        if let timeout = profile.sendTimeout { try socket.set(.sendTimeout, timeout) }
        if profile.routerMandatory { try socket.set(.routerMandatory, true) }
        if let timeout = profile.connectTimeout { try socket.set(.connectTimeout, timeout) }
        if let timeout = profile.retransmitTimeout { try socket.set(.tcpMaxRetransmitTimeout, timeout) }
        switch profile.security {
        case .none: break
        case .curveServer(let keyPair, let domain):
            // The domain before the server flag: every handshake then asks the ZAP handler.
            try socket.set(.zapDomain, domain)
            do {
                try socket.set(.zapEnforceDomain, true)
            } catch where error.code == .invalidArgument {
                // A libzmq without DRAFT options: the broker binds its ZAP handler before any CURVE
                // server socket exists, which is what makes every handshake reach it.
            }
            try socket.makeCurveServer(keyPair)
        case .curveClient(let serverKey, let keyPair):
            try socket.makeCurveClient(serverKey: serverKey, keyPair: keyPair)
        }
        return socket
    }

    /// Nil when `profile`'s socket may be bound at `endpoint`, else the LC2005 refusal.
    /// The pairing port is exempt: it must be reachable before any key is shared, and CPace gives
    /// an eavesdropper nothing and an active attacker one guess of the code per run.
    public func exposureProblem(binding endpoint: Endpoint, as profile: SocketProfile) -> SocketBindError? {
        if endpoint.isLoopback || insecure || profile.role == .pairing || secured(profile).security != .none { return nil }
        return .exposed(endpoint: endpoint, role: profile.role)
    }

    /// Binds `socket` (made from `profile`) to `endpoint`, after the exposure check.
    public func bind(_ socket: Socket, as profile: SocketProfile, to endpoint: String) throws(SocketBindError) {
        let parsed: Endpoint
        do { parsed = try Endpoint(parsing: endpoint, use: .bind) } catch { throw .invalid(error) }
        if let problem = exposureProblem(binding: parsed, as: profile) { throw problem }
        do { try socket.bind(endpoint) } catch { throw .failed(error) }
    }
}

/// Why ``SocketFactory/bind(_:as:to:)`` did not bind.
public enum SocketBindError: Error, Sendable, CustomStringConvertible {
    /// Reachable from the network without encryption, and `insecure` was not given (LC2005).
    case exposed(endpoint: Endpoint, role: SocketRole)
    case invalid(EndpointError)
    case failed(ZMQError)

    public var description: String {
        switch self {
        case .exposed(let endpoint, let role):
            "LC2005: the \(role.rawValue) endpoint \(endpoint) is reachable from the network and not encrypted; pass --keys DIR (make keys with 'lancompute keygen'), bind to 127.0.0.1, or pass --insecure on a network you trust"
        case .invalid(let error): error.problem
        case .failed(let error): "\(error.code.message) (\(error.code.cName))"
        }
    }
}
