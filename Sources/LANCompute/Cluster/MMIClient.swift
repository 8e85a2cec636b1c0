// A one-shot MDP client for the broker's MMI services (`mmi.nodes`), over a DEALER of its own.

import ZeroMQ

public enum MMIClient {
    /// Sends one MDPC01 request for `service` to the broker at `endpoint` and returns the reply's
    /// body; throws a `RuntimeError` with `code` when nothing answers within `timeout` or the
    /// request cannot be sent. Replies for another service are skipped.
    public static func request(
        endpoint: String, service: String, body: [[UInt8]] = [], timeout: Duration,
        code: RuntimeErrorCode = .nodesNoAnswer, context: Context = .shared
    ) throws(RuntimeError) -> [[UInt8]] {
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
            throw RuntimeError(code, "cannot ask the broker at \(endpoint) for \(service): \(error)")
        }
        throw RuntimeError(code, "the broker at \(endpoint) did not answer \(service) within \(timeout); is a broker running there?")
    }
}
