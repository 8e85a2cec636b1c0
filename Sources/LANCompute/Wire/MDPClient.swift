// An MDP/0.1 client: one DEALER that sends a request to a service (a stage or `mmi.*`) and waits for its reply.

import ZeroMQ

/// A reply that was not an MDP/0.1 client message.
public struct MDPClientError: Error, Sendable, CustomStringConvertible {
    public let endpoint: String
    public let service: String
    public let reason: WireError
    public var description: String { "the broker at \(endpoint) answered \(service) with a malformed reply: \(reason)" }
}

/// Asks a broker's services over MDP/0.1, one request at a time; confined to one thread.
///
/// ```swift
/// let client = try MDPClient(endpoint: "tcp://head:5555")
/// if let reply = try client.request("mmi.service", body: [Array("upper".utf8)], timeout: .seconds(2)) { ... }
/// ```
public final class MDPClient {
    public let endpoint: String
    private let socket: Socket

    /// Connects a DEALER (the `client` profile) to the broker's dispatch endpoint; the connection
    /// itself is made in the background, so a broker that is not there yet shows as a timeout.
    /// `curve`: this process's keys and the broker's public key, for a broker that has keys.
    public init(endpoint: String, context: Context = .shared, curve: CurveSetup? = nil) throws(ZMQError) {
        self.endpoint = endpoint
        socket = try SocketFactory(context: context, curve: curve).socket(.client)
        try socket.connect(endpoint)
    }

    /// Sends one request to `service` and waits up to `timeout` for its reply; returns the reply's
    /// body frames, or nil if none came in time or `shouldStop` turned true (checked every 100 ms).
    ///
    /// A reply naming another service (a late answer to an earlier request) is skipped; a reply
    /// that is not an MDP client message throws ``MDPClientError``.
    public func request(
        _ service: String, body: [[UInt8]], timeout: Duration, shouldStop: () -> Bool = { false }
    ) throws -> [[UInt8]]? {
        try socket.send(multipart: ClientMessage(service: service, body: body).frames)
        let deadline = ContinuousClock.now + timeout
        while !shouldStop() {
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { return nil }
            guard try socket.poll(.in, timeout: min(left, .milliseconds(100))).contains(.in) else { continue }
            let frames = try socket.receiveMultipart()
            let reply: ClientMessage
            do {
                reply = try ClientMessage(frames: frames)
            } catch {
                throw MDPClientError(endpoint: endpoint, service: service, reason: error)
            }
            if reply.service == service { return reply.body }
        }
        return nil
    }

    /// Closes the DEALER; later requests fail.
    public func close() { socket.close() }
}

@available(*, unavailable)
extension MDPClient: Sendable {}
