// Watches the handshakes of a client's sockets, so a peer the broker refuses (or a broker that is not the one it should be) exits instead of hanging.

import ZeroMQ

/// Reads the socket monitors of the sockets a worker or a command connects to the broker with.
///
/// libzmq retries a refused connection forever, silently: without this, a worker whose key is not
/// authorized would wait for a topology that never comes. ``check()`` turns the first ZAP refusal
/// into an LC2072 failure, and repeated failed handshakes (the broker holds another key than
/// `--broker-key`, or speaks no CURVE) into LC2073. Confined to the thread that owns the sockets.
public final class ConnectionGuard {
    /// How many failed handshakes in a row, short of a ZAP refusal, mean the broker is not the expected one.
    public static let handshakeFailureLimit = 3

    private let endpoint: String
    private let secured: Bool
    private let publicKey: String?
    private var monitors: [(socket: Socket, monitor: SocketMonitor)] = []
    private var failedHandshakes = 0

    /// `endpoint`: the broker, for the messages; `publicKey`: this process's key (Z85), nil without CURVE.
    public init(endpoint: String, publicKey: String?) {
        self.endpoint = endpoint
        self.secured = publicKey != nil
        self.publicKey = publicKey
    }

    /// Starts watching `socket`; call before it connects (a monitor sees only later connections).
    public func watch(_ socket: Socket) throws(ZMQError) {
        monitors.removeAll { $0.socket.isClosed }
        let monitor = try socket.monitor(events: SocketEvent.handshakeFailures.union([.handshakeSucceeded]))
        monitors.append((socket, monitor))
    }

    /// Waits up to `timeout` for a connection of a watched socket to finish its handshake: nil once
    /// one has (or the time is up: a broker that is not there is the caller's own timeout), the
    /// failure if the broker refused this key or could not be authenticated.
    public func awaitHandshake(timeout: Duration) -> RuntimeError? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for (_, monitor) in monitors {
                while let event = try? monitor.tryReceive() {
                    if let failure = judge(event) { return failure }
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
        for (_, monitor) in monitors {
            while let event = try? monitor.tryReceive() {
                if let failure = judge(event) { return failure }
            }
        }
        return nil
    }

    private func judge(_ event: SocketMonitorEvent) -> RuntimeError? {
        switch event.event {
        case .handshakeSucceeded:
            failedHandshakes = 0
            return nil
        case .handshakeFailedAuth:
            let key = publicKey.map { " (public key \($0))" } ?? ""
            return RuntimeError(.peerRefused, "the broker at \(endpoint) refused this key\(key) (ZAP status \(event.value)); add it to the broker's authorized_keys with the role this command needs ('lancompute keys add')")
        case .handshakeFailedProtocol, .handshakeFailedNoDetail:
            failedHandshakes += 1
            guard failedHandshakes >= Self.handshakeFailureLimit else { return nil }
            if secured {
                return RuntimeError(.brokerNotAuthenticated, "cannot authenticate the broker at \(endpoint): \(failedHandshakes) handshakes failed; its key is not the one given with --broker-key, or it runs without keys")
            }
            return RuntimeError(.brokerNotAuthenticated, "the broker at \(endpoint) refused a connection without CURVE \(failedHandshakes) times; it has keys: pass --key and --broker-key")
        default:
            return nil
        }
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
