// Typed socket options: `try socket.set(.sendHighWaterMark, 1000)`, `try socket.get(.linger)`.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How an option's value travels through `zmq_setsockopt` / `zmq_getsockopt`.
enum OptionStorage {
    case int32(Int32)
    case int64(Int64)
    case bytes([UInt8])
}

/// A socket option with the Swift type of its value.
public struct SocketOption<Value>: Sendable {
    /// The libzmq option number, e.g. `ZMQ_SNDHWM`.
    public let code: Int32
    /// The C name, e.g. `ZMQ_SNDHWM`, used in error messages.
    public let name: String
    let encode: @Sendable (Value) -> OptionStorage
    let decode: @Sendable (OptionStorage) -> Value
    let kind: Kind

    enum Kind: Sendable { case int32, int64, bytes, text }

    init(_ code: Int32, _ name: String, kind: Kind,
         encode: @escaping @Sendable (Value) -> OptionStorage, decode: @escaping @Sendable (OptionStorage) -> Value) {
        self.code = code
        self.name = name
        self.kind = kind
        self.encode = encode
        self.decode = decode
    }
}

extension SocketOption where Value == Int {
    static func int(_ code: Int32, _ name: String) -> Self {
        Self(code, name, kind: .int32, encode: { .int32(Int32(clamping: $0)) }, decode: {
            if case .int32(let v) = $0 { Int(v) } else { 0 }
        })
    }

    /// Most messages queued for sending before the socket blocks or drops (`ZMQ_SNDHWM`; 0 = no limit).
    public static let sendHighWaterMark = int(ZMQ_SNDHWM, "ZMQ_SNDHWM")
    /// Most messages queued on receipt (`ZMQ_RCVHWM`; 0 = no limit).
    public static let receiveHighWaterMark = int(ZMQ_RCVHWM, "ZMQ_RCVHWM")
    /// TCP keepalive: -1 system default, 0 off, 1 on (`ZMQ_TCP_KEEPALIVE`).
    public static let tcpKeepalive = int(ZMQ_TCP_KEEPALIVE, "ZMQ_TCP_KEEPALIVE")
    /// Probes before a TCP keepalive gives up (`ZMQ_TCP_KEEPALIVE_CNT`; -1 system default).
    public static let tcpKeepaliveCount = int(ZMQ_TCP_KEEPALIVE_CNT, "ZMQ_TCP_KEEPALIVE_CNT")
    /// Seconds idle before TCP keepalive probes start (`ZMQ_TCP_KEEPALIVE_IDLE`; -1 system default).
    public static let tcpKeepaliveIdle = int(ZMQ_TCP_KEEPALIVE_IDLE, "ZMQ_TCP_KEEPALIVE_IDLE")
    /// Seconds between TCP keepalive probes (`ZMQ_TCP_KEEPALIVE_INTVL`; -1 system default).
    public static let tcpKeepaliveInterval = int(ZMQ_TCP_KEEPALIVE_INTVL, "ZMQ_TCP_KEEPALIVE_INTVL")
    /// The socket's readiness (`ZMQ_EVENTS`): a bit set of `ZMQ_POLLIN`, `ZMQ_POLLOUT`. Read-only.
    public static let events = int(ZMQ_EVENTS, "ZMQ_EVENTS")
    /// The file descriptor that signals readiness (`ZMQ_FD`), for integrating with other event loops. Read-only.
    public static let fileDescriptor = int(ZMQ_FD, "ZMQ_FD")
    /// The kernel send buffer size in bytes (`ZMQ_SNDBUF`; -1 system default).
    public static let sendBufferSize = int(ZMQ_SNDBUF, "ZMQ_SNDBUF")
    /// The kernel receive buffer size in bytes (`ZMQ_RCVBUF`; -1 system default).
    public static let receiveBufferSize = int(ZMQ_RCVBUF, "ZMQ_RCVBUF")
    /// Pending connections a listening socket queues (`ZMQ_BACKLOG`).
    public static let backlog = int(ZMQ_BACKLOG, "ZMQ_BACKLOG")
    /// The socket's type as a `ZMQ_*` number (`ZMQ_TYPE`). Read-only.
    public static let socketType = int(ZMQ_TYPE, "ZMQ_TYPE")
    /// The security mechanism in use (`ZMQ_MECHANISM`): 0 NULL, 1 PLAIN, 2 CURVE, 3 GSSAPI. Read-only.
    public static let mechanism = int(ZMQ_MECHANISM, "ZMQ_MECHANISM")
}

extension SocketOption where Value == Int64 {
    /// Largest inbound message accepted; a larger one drops the connection (`ZMQ_MAXMSGSIZE`; -1 no limit).
    public static let maxMessageSize = SocketOption<Int64>(
        ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", kind: .int64, encode: { .int64($0) },
        decode: { if case .int64(let v) = $0 { v } else { 0 } })
}

extension SocketOption where Value == Bool {
    static func flag(_ code: Int32, _ name: String) -> Self {
        Self(code, name, kind: .int32, encode: { .int32($0 ? 1 : 0) }, decode: {
            if case .int32(let v) = $0 { v != 0 } else { false }
        })
    }

    /// ROUTER: fail sends to unknown routing ids with ``ZMQErrorCode/hostUnreachable`` instead of
    /// dropping them (`ZMQ_ROUTER_MANDATORY`). Write-only.
    public static let routerMandatory = flag(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY")
    /// ROUTER: a new peer with a routing id already in use takes it over (`ZMQ_ROUTER_HANDOVER`). Write-only.
    public static let routerHandover = flag(ZMQ_ROUTER_HANDOVER, "ZMQ_ROUTER_HANDOVER")
    /// Queue messages only to completed connections (`ZMQ_IMMEDIATE`).
    public static let immediate = flag(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE")
    /// Act as a CURVE server, holding the secret key (`ZMQ_CURVE_SERVER`).
    public static let curveServer = flag(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER")
    /// XPUB: pass every subscription upstream, duplicates included (`ZMQ_XPUB_VERBOSE`). Write-only.
    public static let xpubVerbose = flag(ZMQ_XPUB_VERBOSE, "ZMQ_XPUB_VERBOSE")
    /// Keep only the last message in the queue (`ZMQ_CONFLATE`).
    public static let conflate = flag(ZMQ_CONFLATE, "ZMQ_CONFLATE")
    /// Whether more parts of the current multipart message follow (`ZMQ_RCVMORE`). Read-only.
    public static let receiveMore = flag(ZMQ_RCVMORE, "ZMQ_RCVMORE")
    /// Allow IPv6 on TCP endpoints (`ZMQ_IPV6`).
    public static let ipv6 = flag(ZMQ_IPV6, "ZMQ_IPV6")
    /// ROUTER, DEALER, REQ: send an empty message to each new peer on connect (`ZMQ_PROBE_ROUTER`). Write-only.
    public static let probeRouter = flag(ZMQ_PROBE_ROUTER, "ZMQ_PROBE_ROUTER")
    /// REQ: match replies to requests, dropping stale ones (`ZMQ_REQ_CORRELATE`). Write-only.
    public static let requestCorrelate = flag(ZMQ_REQ_CORRELATE, "ZMQ_REQ_CORRELATE")
    /// REQ: allow a new request before the reply to the previous one (`ZMQ_REQ_RELAXED`). Write-only.
    public static let requestRelaxed = flag(ZMQ_REQ_RELAXED, "ZMQ_REQ_RELAXED")
    /// XPUB: subscriptions are applied by the application with ``subscribe`` (`ZMQ_XPUB_MANUAL`). Write-only.
    public static let xpubManual = flag(ZMQ_XPUB_MANUAL, "ZMQ_XPUB_MANUAL")
    /// XPUB: block (or fail with ``ZMQErrorCode/again``) at the high-water mark instead of dropping
    /// (`ZMQ_XPUB_NODROP`). Write-only.
    public static let xpubNoDrop = flag(ZMQ_XPUB_NODROP, "ZMQ_XPUB_NODROP")
    /// SUB, XSUB, PUB, XPUB: deliver the messages that do *not* match a subscription (`ZMQ_INVERT_MATCHING`).
    public static let invertMatching = flag(ZMQ_INVERT_MATCHING, "ZMQ_INVERT_MATCHING")
    /// Refuse every peer when no ZAP handler is bound, instead of accepting them all (`ZMQ_ZAP_ENFORCE_DOMAIN`).
    /// A DRAFT option of libzmq 4.3: the header hides it behind `ZMQ_BUILD_DRAFT_API`, so its number
    /// (93) is written here; a libzmq built without draft options fails the set with `EINVAL`.
    public static let zapEnforceDomain = flag(93, "ZMQ_ZAP_ENFORCE_DOMAIN")
    /// Act as a PLAIN server, checking user names and passwords through ZAP (`ZMQ_PLAIN_SERVER`).
    public static let plainServer = flag(ZMQ_PLAIN_SERVER, "ZMQ_PLAIN_SERVER")
}

extension SocketOption where Value == Duration? {
    /// A time in milliseconds where -1 (nil) means "forever".
    static func milliseconds(_ code: Int32, _ name: String) -> Self {
        Self(code, name, kind: .int32, encode: { duration in
            guard let duration else { return .int32(-1) }
            return .int32(wholeMilliseconds(duration, roundingUp: false))
        }, decode: {
            guard case .int32(let v) = $0, v >= 0 else { return nil }
            return .milliseconds(Int(v))
        })
    }

    /// How long unsent messages are kept after close (`ZMQ_LINGER`; nil = forever). The binding sets zero.
    public static let linger = milliseconds(ZMQ_LINGER, "ZMQ_LINGER")
    /// How long a blocking receive waits before ``ZMQErrorCode/again`` (`ZMQ_RCVTIMEO`; nil = forever).
    public static let receiveTimeout = milliseconds(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO")
    /// How long a blocking send waits before ``ZMQErrorCode/again`` (`ZMQ_SNDTIMEO`; nil = forever).
    public static let sendTimeout = milliseconds(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO")
    /// First wait before reconnecting (`ZMQ_RECONNECT_IVL`; nil = never reconnect).
    public static let reconnectInterval = milliseconds(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL")
    /// Longest wait between reconnects as the interval backs off (`ZMQ_RECONNECT_IVL_MAX`; zero = no backoff).
    public static let reconnectIntervalMax = milliseconds(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX")
    /// ZMTP heartbeat (PING) interval (`ZMQ_HEARTBEAT_IVL`; zero = off).
    public static let heartbeatInterval = milliseconds(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL")
    /// How long the peer may wait for our next PING before dropping us (`ZMQ_HEARTBEAT_TTL`, 100 ms units).
    public static let heartbeatTTL = milliseconds(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL")
    /// How long to wait for a PONG before closing the connection (`ZMQ_HEARTBEAT_TIMEOUT`).
    public static let heartbeatTimeout = milliseconds(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT")
    /// Longest time a connection may take to complete its ZMTP (and security) handshake
    /// (`ZMQ_HANDSHAKE_IVL`; zero = no limit).
    public static let handshakeInterval = milliseconds(ZMQ_HANDSHAKE_IVL, "ZMQ_HANDSHAKE_IVL")
    /// Longest wait for a TCP connect to complete (`ZMQ_CONNECT_TIMEOUT`; zero = the system's).
    public static let connectTimeout = milliseconds(ZMQ_CONNECT_TIMEOUT, "ZMQ_CONNECT_TIMEOUT")
    /// Longest time sent TCP data may stay unacknowledged before the connection is dropped
    /// (`ZMQ_TCP_MAXRT`; zero = the system's).
    public static let tcpMaxRetransmitTimeout = milliseconds(ZMQ_TCP_MAXRT, "ZMQ_TCP_MAXRT")
}

extension SocketOption where Value == [UInt8] {
    static func bytes(_ code: Int32, _ name: String) -> Self {
        Self(code, name, kind: .bytes, encode: { .bytes($0) }, decode: {
            if case .bytes(let v) = $0 { v } else { [] }
        })
    }

    /// The identity a ROUTER peer sees for this socket (`ZMQ_ROUTING_ID`; 1 to 255 bytes, not starting with 0).
    public static let routingID = bytes(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID")
    /// SUB: start receiving messages that begin with this prefix (`ZMQ_SUBSCRIBE`; empty = all). Write-only.
    public static let subscribe = bytes(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE")
    /// SUB: stop receiving messages with this prefix (`ZMQ_UNSUBSCRIBE`). Write-only.
    public static let unsubscribe = bytes(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE")
    /// This socket's long-term CURVE public key, 32 bytes (`ZMQ_CURVE_PUBLICKEY`).
    public static let curvePublicKey = bytes(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY")
    /// This socket's long-term CURVE secret key, 32 bytes (`ZMQ_CURVE_SECRETKEY`).
    public static let curveSecretKey = bytes(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY")
    /// The server's CURVE public key, 32 bytes, set on a client (`ZMQ_CURVE_SERVERKEY`).
    public static let curveServerKey = bytes(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY")
    /// The routing id the *next* ``Socket/connect(_:)`` gives the peer on a ROUTER
    /// (`ZMQ_CONNECT_ROUTING_ID`). Write-only.
    public static let connectRoutingID = bytes(ZMQ_CONNECT_ROUTING_ID, "ZMQ_CONNECT_ROUTING_ID")
    /// XPUB: a message sent to every new subscriber (`ZMQ_XPUB_WELCOME_MSG`). Write-only.
    public static let xpubWelcomeMessage = bytes(ZMQ_XPUB_WELCOME_MSG, "ZMQ_XPUB_WELCOME_MSG")
}

extension SocketOption where Value == String {
    static func text(_ code: Int32, _ name: String) -> Self {
        Self(code, name, kind: .text, encode: { .bytes(Array($0.utf8)) }, decode: {
            guard case .bytes(var v) = $0 else { return "" }
            if let nul = v.firstIndex(of: 0) { v.removeSubrange(nul...) }
            return String(decoding: v, as: UTF8.self)
        })
    }

    /// The endpoint last bound or connected, wildcards resolved (`ZMQ_LAST_ENDPOINT`). Read-only.
    public static let lastEndpoint = text(ZMQ_LAST_ENDPOINT, "ZMQ_LAST_ENDPOINT")
    /// The ZAP authentication domain (`ZMQ_ZAP_DOMAIN`).
    public static let zapDomain = text(ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN")
    /// The PLAIN user name a client presents (`ZMQ_PLAIN_USERNAME`).
    public static let plainUsername = text(ZMQ_PLAIN_USERNAME, "ZMQ_PLAIN_USERNAME")
    /// The PLAIN password a client presents (`ZMQ_PLAIN_PASSWORD`).
    public static let plainPassword = text(ZMQ_PLAIN_PASSWORD, "ZMQ_PLAIN_PASSWORD")
    /// A SOCKS5 proxy (`host:port`) for outgoing TCP connections (`ZMQ_SOCKS_PROXY`).
    public static let socksProxy = text(ZMQ_SOCKS_PROXY, "ZMQ_SOCKS_PROXY")
}

extension Socket {
    /// Sets an option (`zmq_setsockopt`).
    public func set<Value>(_ option: SocketOption<Value>, _ value: Value) throws(ZMQError) {
        let handle = try rawHandle("set \(option.name)")
        let operation = "zmq_setsockopt(\(option.name))"
        switch option.encode(value) {
        case .int32(var v):
            _ = try zmqCall(operation) { zmq_setsockopt(handle, option.code, &v, MemoryLayout<Int32>.size) }
        case .int64(var v):
            _ = try zmqCall(operation) { zmq_setsockopt(handle, option.code, &v, MemoryLayout<Int64>.size) }
        case .bytes(let v):
            _ = try zmqCall(operation) {
                v.withUnsafeBytes { zmq_setsockopt(handle, option.code, $0.baseAddress, $0.count) }
            }
        }
    }

    /// Reads an option (`zmq_getsockopt`).
    public func get<Value>(_ option: SocketOption<Value>) throws(ZMQError) -> Value {
        let handle = try rawHandle("get \(option.name)")
        let operation = "zmq_getsockopt(\(option.name))"
        switch option.kind {
        case .int32:
            var v: Int32 = 0
            var size = MemoryLayout<Int32>.size
            _ = try zmqCall(operation) { zmq_getsockopt(handle, option.code, &v, &size) }
            return option.decode(.int32(v))
        case .int64:
            var v: Int64 = 0
            var size = MemoryLayout<Int64>.size
            _ = try zmqCall(operation) { zmq_getsockopt(handle, option.code, &v, &size) }
            return option.decode(.int64(v))
        case .bytes, .text:
            // libzmq hands CURVE keys out only for a buffer of exactly 32 (raw) or 41 (Z85) bytes.
            let isCurveKey = option.code == ZMQ_CURVE_PUBLICKEY || option.code == ZMQ_CURVE_SECRETKEY
                || option.code == ZMQ_CURVE_SERVERKEY
            var capacity = isCurveKey ? 32 : 256
            while true {
                var buffer = [UInt8](repeating: 0, count: capacity)
                var size = buffer.count
                let result = buffer.withUnsafeMutableBytes { raw in
                    zmq_getsockopt(handle, option.code, raw.baseAddress, &size)
                }
                if result == 0 { return option.decode(.bytes(Array(buffer.prefix(min(size, capacity))))) }
                let code = zmq_errno()
                if code == EINTR { continue }
                // EINVAL also means "buffer too small": grow it a few times before believing it.
                if code == EINVAL && !isCurveKey && capacity < 65536 {
                    capacity *= 16
                    continue
                }
                throw ZMQError(code: ZMQErrorCode(rawValue: code), operation: operation)
            }
        }
    }

    /// SUB: receive messages starting with `prefix` (empty: everything).
    public func subscribe(_ prefix: String = "") throws(ZMQError) {
        try set(.subscribe, Array(prefix.utf8))
    }

    /// SUB: stop receiving messages starting with `prefix`.
    public func unsubscribe(_ prefix: String) throws(ZMQError) {
        try set(.unsubscribe, Array(prefix.utf8))
    }

    /// SUB: receive messages starting with the bytes `prefix` (binary topics).
    public func subscribe(bytes prefix: [UInt8]) throws(ZMQError) {
        try set(.subscribe, prefix)
    }

    /// SUB: stop receiving messages starting with the bytes `prefix`.
    public func unsubscribe(bytes prefix: [UInt8]) throws(ZMQError) {
        try set(.unsubscribe, prefix)
    }

    /// Makes this socket a CURVE server with `keyPair` (sets `ZMQ_CURVE_SERVER`, `ZMQ_CURVE_SECRETKEY`,
    /// `ZMQ_CURVE_PUBLICKEY`). Call before bind/connect: security applies to later connections.
    public func makeCurveServer(_ keyPair: CurveKeyPair) throws(ZMQError) {
        try set(.curveServer, true)
        try set(.curveSecretKey, keyPair.secretKey)
        try set(.curvePublicKey, keyPair.publicKey)
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`, using `keyPair`
    /// as its own long-term keys (sets `ZMQ_CURVE_SERVERKEY`, `ZMQ_CURVE_PUBLICKEY`, `ZMQ_CURVE_SECRETKEY`).
    public func makeCurveClient(serverKey: [UInt8], keyPair: CurveKeyPair) throws(ZMQError) {
        try set(.curveServerKey, serverKey)
        try set(.curvePublicKey, keyPair.publicKey)
        try set(.curveSecretKey, keyPair.secretKey)
    }
}
