// Watches the handshakes of a client's sockets, so a peer the broker refuses (or a broker that is not the one it should be) exits instead of hanging.

import Foundation
import ZeroMQ

/// Reads the socket monitors of the sockets a worker or a command connects to the broker with.
///
/// libzmq retries a refused connection forever, silently: without this, a worker whose key is not
/// authorized would wait for a topology that never comes. ``check()`` turns the first ZAP refusal
/// into an LC2072 failure; a mismatch of keys on one side only, or repeated failed handshakes (the
/// broker holds another key than `--broker-key`) into LC2073; a peer that speaks no ZeroMQ into
/// LC2081, and a ZeroMQ socket that takes no DEALER (the events port given for the dispatch one)
/// into LC2082. Confined to the thread that owns the sockets.
public final class ConnectionGuard {
    /// How many failed handshakes in a row, short of a ZAP refusal, mean the broker is not the expected one.
    public static let handshakeFailureLimit = 3

    private let endpoint: String
    private let secured: Bool
    private let publicKey: String?
    /// Each watched socket, its monitor, and whether a connection of it is made and its handshake not yet over.
    private var monitors: [(socket: Socket, monitor: SocketMonitor, inHandshake: Bool)] = []
    private var failedHandshakes = 0
    /// Connections closed by the peer in the handshake without a failure event, in a row.
    private var droppedInHandshake = 0

    /// `endpoint`: the broker, for the messages; `publicKey`: this process's key (Z85), nil without CURVE.
    public init(endpoint: String, publicKey: String?) {
        self.endpoint = endpoint
        self.secured = publicKey != nil
        self.publicKey = publicKey
    }

    /// Starts watching `socket`; call before it connects (a monitor sees only later connections).
    public func watch(_ socket: Socket) throws(ZMQError) {
        monitors.removeAll { $0.socket.isClosed }
        let monitor = try socket.monitor(events: SocketEvent.handshakeFailures.union([.handshakeSucceeded, .connected, .disconnected]))
        monitors.append((socket, monitor, false))
    }

    /// Waits up to `timeout` for a connection of a watched socket to finish its handshake: nil once
    /// one has (or the time is up: a broker that is not there is the caller's own timeout), the
    /// failure if the broker refused this key or could not be authenticated.
    public func awaitHandshake(timeout: Duration) -> RuntimeError? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for index in monitors.indices {
                while let event = try? monitors[index].monitor.tryReceive() {
                    if let failure = judge(event, &monitors[index].inHandshake) { return failure }
                    if event.event == .handshakeSucceeded { return nil }
                }
            }
            _ = try? monitors.first?.monitor.socket.poll(.in, timeout: .milliseconds(50))
        }
        return nil
    }

    /// The failure that should end the process, once the events read so far show one; nil otherwise.
    public func check() -> RuntimeError? {
        monitors.removeAll { $0.socket.isClosed }
        for index in monitors.indices {
            while let event = try? monitors[index].monitor.tryReceive() {
                if let failure = judge(event, &monitors[index].inHandshake) { return failure }
            }
        }
        return nil
    }

    /// `inHandshake`: the state of the socket the event is of.
    private func judge(_ event: SocketMonitorEvent, _ inHandshake: inout Bool) -> RuntimeError? {
        switch event.event {
        case .handshakeSucceeded:
            failedHandshakes = 0
            droppedInHandshake = 0
            inHandshake = false
            return nil
        case .connected:
            inHandshake = true
            return nil
        case .disconnected:
            // A connection that ends with neither a handshake nor a failure event: the peer is a
            // ZeroMQ socket of a kind that takes no DEALER (an XPUB, a PULL, another ROUTER's port
            // is fine), and closed the connection when it read this socket's type.
            guard inHandshake else { return nil }
            inHandshake = false
            droppedInHandshake += 1
            guard droppedInHandshake >= Self.handshakeFailureLimit else { return nil }
            return RuntimeError(.brokerWrongSocket, "\(endpoint) is a ZeroMQ socket that takes no workers or clients: it closed \(droppedInHandshake) connections in the handshake; give the broker's dispatch endpoint (port 5555 by default; the events port, 5556 by default, and the aggregator, 5557, are not it)")
        case .handshakeFailedAuth:
            let key = publicKey.map { " (public key \($0))" } ?? ""
            return RuntimeError(.peerRefused, "the broker at \(endpoint) refused this key\(key) (ZAP status \(event.value)); add it to the broker's authorized_keys with the role this command needs ('lancompute keys add')")
        case .handshakeFailedProtocol where event.value == mechanismMismatch:
            // The two sides speak different security mechanisms: the one with keys meets one without.
            // (Three tries, as for any failed handshake: the broker counts and reports each.)
            inHandshake = false
            failedHandshakes += 1
            guard failedHandshakes >= Self.handshakeFailureLimit else { return nil }
            if secured {
                return RuntimeError(.brokerNotAuthenticated, "the broker at \(endpoint) runs without keys (--insecure), and this command has them: start the broker with --keys DIR, or drop --key/--broker-key and pass --insecure on a network you trust")
            }
            return RuntimeError(.brokerNotAuthenticated, "the broker at \(endpoint) has keys and this command has none: pass --key and --broker-key (or pair this machine: 'lancompute pair' on the head node)")
        case .handshakeFailedProtocol, .handshakeFailedNoDetail:
            inHandshake = false
            failedHandshakes += 1
            guard failedHandshakes >= Self.handshakeFailureLimit else { return nil }
            // libzmq may only see the connection closed: the peer's own greeting says what it is.
            let greeting = (try? Endpoint(parsing: endpoint)).map { ZMTPGreeting.probe($0) } ?? .unknown
            switch (secured, greeting) {
            case (true, .zeroMQ(nil)):
                return RuntimeError(.brokerNotAuthenticated, "the broker at \(endpoint) runs without keys (--insecure), and this command has them: start the broker with --keys DIR, or drop --key/--broker-key and pass --insecure on a network you trust")
            case (false, .zeroMQ(let mechanism)) where mechanism == "CURVE":
                return RuntimeError(.brokerNotAuthenticated, "the broker at \(endpoint) has keys and this command has none: pass --key and --broker-key (or pair this machine: 'lancompute pair' on the head node)")
            case (_, .notZeroMQ):
                return RuntimeError(.brokerNotZeroMQ, "\(endpoint) accepts connections but does not speak ZeroMQ: \(failedHandshakes) handshakes ended with \(String(cString: strerror(Int32(event.value)))); is it the broker's dispatch port (5555 by default)?")
            default:
                break
            }
            if secured {
                return RuntimeError(.brokerNotAuthenticated, "cannot authenticate the broker at \(endpoint): \(failedHandshakes) handshakes failed; it holds another key than --broker-key, or runs without keys (--insecure), or this is not its dispatch port (5555 by default)")
            }
            if case .zeroMQ = greeting {
                return RuntimeError(.brokerWrongSocket, "\(endpoint) is a ZeroMQ socket that takes no workers or clients: it closed \(failedHandshakes) connections in the handshake; give the broker's dispatch endpoint (port 5555 by default; the events port, 5556 by default, and the aggregator, 5557, are not it)")
            }
            return RuntimeError(.brokerNotZeroMQ, "the peer at \(endpoint) ended the ZeroMQ handshake \(failedHandshakes) times (\(event.event == .handshakeFailedNoDetail ? String(cString: strerror(Int32(event.value))) : "protocol error 0x\(String(event.value, radix: 16))")): it has keys (pass --key and --broker-key), or it is not a LANCompute dispatch socket (5555 by default)")
        default:
            return nil
        }
    }
}

/// `ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH`: one side speaks CURVE, the other NULL.
private let mechanismMismatch = 0x1100_0002

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
