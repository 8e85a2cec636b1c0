// A one-shot MDP client for the broker's MMI services (`mmi.nodes`), over a DEALER of its own.

import ZeroMQ

/// Why an MMI request got no usable answer; `message` starts with its LC code.
public struct MMIError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum MMIClient {
    /// Sends one MDPC01 request for `service` to the broker at `endpoint` and returns the reply's
    /// body, or throws when nothing answers within `timeout`. Replies for another service (a late
    /// answer to someone else's request cannot reach this DEALER, but a broker could misbehave) are skipped.
    public static func request(
        endpoint: String, service: String, body: [[UInt8]] = [], timeout: Duration, context: Context = .shared
    ) throws(MMIError) -> [[UInt8]] {
        do {
            let socket = try Socket(.dealer, context: context)
            defer { socket.close() }
            try socket.connect(endpoint)
            try socket.send(multipart: ClientMessage(service: service, body: body).frames)
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let left = deadline - ContinuousClock.now
                guard try socket.poll(.in, timeout: min(left, .milliseconds(100))).contains(.in) else { continue }
                let frames = try socket.receiveMultipart()
                guard let reply = try? ClientMessage(frames: frames), reply.service == service else { continue }
                return reply.body
            }
        } catch {
            throw MMIError("LC2040: cannot ask the broker at \(endpoint) for \(service): \(error)")
        }
        throw MMIError("LC2040: the broker at \(endpoint) did not answer \(service) within \(timeout); is a broker running there?")
    }
}
