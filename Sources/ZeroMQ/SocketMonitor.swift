// The socket monitor: connection and security events of one socket, read from an inproc PAIR.

import CZeroMQ

/// Something that happened to one of a socket's connections (`ZMQ_EVENT_*`).
public enum SocketEvent: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A connection to a peer was made (`ZMQ_EVENT_CONNECTED`; value: the file descriptor).
    case connected
    /// A connect did not complete at once and goes on in the background (`ZMQ_EVENT_CONNECT_DELAYED`).
    case connectDelayed
    /// A connect is retried after a failure (`ZMQ_EVENT_CONNECT_RETRIED`; value: the wait in milliseconds).
    case connectRetried
    /// A bind succeeded (`ZMQ_EVENT_LISTENING`; value: the file descriptor).
    case listening
    /// A bind failed (`ZMQ_EVENT_BIND_FAILED`; value: the errno).
    case bindFailed
    /// A connection from a peer was accepted (`ZMQ_EVENT_ACCEPTED`; value: the file descriptor).
    case accepted
    /// Accepting a connection failed (`ZMQ_EVENT_ACCEPT_FAILED`; value: the errno).
    case acceptFailed
    /// A connection's file descriptor was closed (`ZMQ_EVENT_CLOSED`).
    case closed
    /// Closing a connection failed (`ZMQ_EVENT_CLOSE_FAILED`; value: the errno).
    case closeFailed
    /// A peer went away (`ZMQ_EVENT_DISCONNECTED`; value: the file descriptor).
    case disconnected
    /// The monitor was stopped or its socket closed; no event follows (`ZMQ_EVENT_MONITOR_STOPPED`).
    case monitorStopped
    /// The ZMTP or security handshake failed without detail (`ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL`; value: the errno).
    case handshakeFailedNoDetail
    /// The ZMTP and security handshake succeeded: the connection is usable (`ZMQ_EVENT_HANDSHAKE_SUCCEEDED`).
    case handshakeSucceeded
    /// The handshake failed on a protocol error, for example a CURVE message that would not decrypt
    /// (`ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL`; value: a `ZMQ_PROTOCOL_ERROR_*` code).
    case handshakeFailedProtocol
    /// ZAP authentication refused the peer (`ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`; value: the ZAP status code, e.g. 400).
    case handshakeFailedAuth

    /// The `ZMQ_EVENT_*` bit.
    public var bit: Int32 {
        switch self {
        case .connected: ZMQ_EVENT_CONNECTED
        case .connectDelayed: ZMQ_EVENT_CONNECT_DELAYED
        case .connectRetried: ZMQ_EVENT_CONNECT_RETRIED
        case .listening: ZMQ_EVENT_LISTENING
        case .bindFailed: ZMQ_EVENT_BIND_FAILED
        case .accepted: ZMQ_EVENT_ACCEPTED
        case .acceptFailed: ZMQ_EVENT_ACCEPT_FAILED
        case .closed: ZMQ_EVENT_CLOSED
        case .closeFailed: ZMQ_EVENT_CLOSE_FAILED
        case .disconnected: ZMQ_EVENT_DISCONNECTED
        case .monitorStopped: ZMQ_EVENT_MONITOR_STOPPED
        case .handshakeFailedNoDetail: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        case .handshakeSucceeded: ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        case .handshakeFailedProtocol: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        case .handshakeFailedAuth: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        }
    }

    /// The event with `ZMQ_EVENT_*` bit `bit`; nil for events this binding does not know.
    public init?(bit: Int32) {
        guard let event = Self.allCases.first(where: { $0.bit == bit }) else { return nil }
        self = event
    }

    /// The three handshake failures.
    public static let handshakeFailures: Set<SocketEvent> = [
        .handshakeFailedNoDetail, .handshakeFailedProtocol, .handshakeFailedAuth,
    ]

    public var description: String {
        switch self {
        case .connected: "connected"
        case .connectDelayed: "connectDelayed"
        case .connectRetried: "connectRetried"
        case .listening: "listening"
        case .bindFailed: "bindFailed"
        case .accepted: "accepted"
        case .acceptFailed: "acceptFailed"
        case .closed: "closed"
        case .closeFailed: "closeFailed"
        case .disconnected: "disconnected"
        case .monitorStopped: "monitorStopped"
        case .handshakeFailedNoDetail: "handshakeFailedNoDetail"
        case .handshakeSucceeded: "handshakeSucceeded"
        case .handshakeFailedProtocol: "handshakeFailedProtocol"
        case .handshakeFailedAuth: "handshakeFailedAuth"
        }
    }
}

/// One event read from a ``SocketMonitor``.
public struct SocketMonitorEvent: Sendable, Hashable, CustomStringConvertible {
    /// What happened.
    public let event: SocketEvent
    /// The event's number: a file descriptor, an errno, a retry interval, a `ZMQ_PROTOCOL_ERROR_*`
    /// code or a ZAP status, depending on ``event``.
    public let value: UInt32
    /// The endpoint concerned, e.g. `tcp://127.0.0.1:5555`.
    public let endpoint: String

    public init(event: SocketEvent, value: UInt32, endpoint: String) {
        self.event = event
        self.value = value
        self.endpoint = endpoint
    }

    /// For the events whose value is an errno (`bindFailed`, `acceptFailed`, `closeFailed`,
    /// `handshakeFailedNoDetail`), that error code; otherwise nil.
    public var errorCode: ZMQErrorCode? {
        switch event {
        case .bindFailed, .acceptFailed, .closeFailed, .handshakeFailedNoDetail:
            ZMQErrorCode(rawValue: Int32(bitPattern: value))
        default:
            nil
        }
    }

    public var description: String { "\(event)(\(value)) \(endpoint)" }
}

/// Reads the events of a monitored socket (`zmq_socket_monitor`).
///
/// libzmq publishes the events on an inproc PAIR socket; the monitor owns the other end.
/// It belongs to the thread that owns the monitored socket, and can be waited on in a
/// ``Poller`` through ``socket``. Events are only reported for connections made after
/// the monitor started, so start it before `bind`/`connect`.
public final class SocketMonitor {
    /// The PAIR socket the events arrive on (for a ``Poller``); read events with ``receive(timeout:)``.
    public let socket: Socket
    /// The inproc endpoint libzmq publishes the events on.
    public let endpoint: String
    private weak var monitored: Socket?
    private let frame = Message()

    fileprivate init(monitoring monitored: Socket, events: Set<SocketEvent>) throws(ZMQError) {
        let handle = try monitored.rawHandle("monitor")
        let mask = events.reduce(Int32(0)) { $0 | $1.bit }
        // Unique per monitor: the socket's address tells live sockets apart, the random part
        // tells apart a later socket allocated at the same address.
        let endpoint = "inproc://zeromq.monitor.\(UInt(bitPattern: handle)).\(UInt64.random(in: 0...UInt64.max))"
        _ = try zmqCall("zmq_socket_monitor(\(endpoint))") { zmq_socket_monitor(handle, endpoint, mask) }
        let socket: Socket
        do {
            socket = try Socket(.pair, context: monitored.context)
            try socket.connect(endpoint)
        } catch {
            zmq_socket_monitor(handle, nil, 0)
            throw error
        }
        self.socket = socket
        self.endpoint = endpoint
        self.monitored = monitored
        monitored.monitorEndpoint = endpoint
    }

    deinit {
        // Nobody reads the events any more: spare libzmq from publishing them.
        stop()
    }

    /// The next event, waiting up to `timeout` (nil: forever); nil if none came in time.
    public func receive(timeout: Duration?) throws(ZMQError) -> SocketMonitorEvent? {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        while true {
            if let event = try tryReceive() { return event }
            var remaining: Duration?
            if let deadline {
                remaining = deadline - clock.now
                if remaining! <= .zero { return nil }
            }
            _ = try socket.poll(.in, timeout: remaining)
        }
    }

    /// The next event if one is waiting; nil otherwise. Never blocks.
    public func tryReceive() throws(ZMQError) -> SocketMonitorEvent? {
        while true {
            guard try socket.receive(into: frame, dontWait: true) else { return nil }
            // An event is two frames: 6 bytes (event number u16, value u32, host byte order), then the endpoint.
            let header: (bit: UInt16, value: UInt32)? = frame.count == 6
                ? frame.withUnsafeBytes { ($0.loadUnaligned(as: UInt16.self), $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self)) }
                : nil
            var endpoint = ""
            var more = frame.hasMore
            while more {
                _ = try socket.receive(into: frame, dontWait: false)
                endpoint = frame.string
                more = frame.hasMore
            }
            // Events newer than this binding (or a malformed frame) are skipped, not misreported.
            guard let header, let event = SocketEvent(bit: Int32(header.bit)) else { continue }
            return SocketMonitorEvent(event: event, value: header.value, endpoint: endpoint)
        }
    }

    /// Reads events until one of `events` arrives (returned) or `timeout` passes (nil).
    /// The events read on the way are dropped.
    public func wait(for events: Set<SocketEvent>, timeout: Duration) throws(ZMQError) -> SocketMonitorEvent? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let remaining = max(.zero, deadline - clock.now)
            guard let event = try receive(timeout: remaining) else { return nil }
            if events.contains(event.event) { return event }
            if remaining == .zero { return nil }
        }
    }

    /// Stops monitoring (`zmq_socket_monitor` with no endpoint); a ``SocketEvent/monitorStopped`` event
    /// follows if it was asked for. Does nothing once the monitored socket is gone or closed, or
    /// when a newer monitor has replaced this one.
    public func stop() {
        defer { monitored = nil }
        guard let monitored, monitored.monitorEndpoint == endpoint, let handle = monitored.openHandle else { return }
        zmq_socket_monitor(handle, nil, 0)
        monitored.monitorEndpoint = nil
    }
}

@available(*, unavailable)
extension SocketMonitor: Sendable {}

extension Socket {
    /// Starts reporting `events` of this socket's connections (all of them by default);
    /// read them from the returned monitor. A socket has at most one monitor: starting a
    /// new one stops the previous one. The corresponding call is `zmq_socket_monitor`.
    public func monitor(events: Set<SocketEvent> = Set(SocketEvent.allCases)) throws(ZMQError) -> SocketMonitor {
        try SocketMonitor(monitoring: self, events: events)
    }
}
