// MDP/0.1 (ZeroMQ RFC 7) frames as LANCompute sends and parses them, plus its compatible extensions.

/// Protocol constants of MDP/0.1.
public enum MDP {
    /// Header frame of every worker-protocol message.
    public static let workerHeader: [UInt8] = Array("MDPW01".utf8)
    /// Header frame of every client-protocol message.
    public static let clientHeader: [UInt8] = Array("MDPC01".utf8)

    /// Worker-protocol commands (the third frame, one byte).
    public enum Command: UInt8, Sendable, CustomStringConvertible {
        case ready = 0x01
        case request = 0x02
        case reply = 0x03
        case heartbeat = 0x04
        case disconnect = 0x05

        public var description: String {
            switch self {
            case .ready: "READY"
            case .request: "REQUEST"
            case .reply: "REPLY"
            case .heartbeat: "HEARTBEAT"
            case .disconnect: "DISCONNECT"
            }
        }
    }

    /// The value of the `protocol` capability a LANCompute worker announces on READY.
    public static let lanComputeProtocol = "lancompute/1"

    /// The `client` frame of a REQUEST to a LANCompute worker that carries items sent by MDP clients:
    /// their outputs must come back in the REPLY, even from a final stage, and never go to the aggregator.
    public static let clientItemsAddress: [UInt8] = Array("client".utf8)
}

/// A worker-protocol message as a worker's DEALER sees it (no routing-id frame).
public enum WorkerMessage: Equatable, Sendable {
    /// A worker offers to serve `service`; LANCompute workers add a capabilities frame.
    case ready(service: String, capabilities: Capabilities?)
    /// The broker hands the worker a request: `client` is echoed back in the reply.
    case request(client: [UInt8], body: [[UInt8]])
    /// The worker's answer to the request whose `client` frame it echoes.
    case reply(client: [UInt8], body: [[UInt8]])
    case heartbeat
    /// A HEARTBEAT from a LANCompute worker with a fourth frame: fresh values of the capabilities
    /// that change while it runs (load, available memory, GPU use). See Docs/protocol.md 7.6.
    case refresh(capabilities: Capabilities)
    case disconnect

    /// The frames, starting with the empty delimiter frame.
    public var frames: [[UInt8]] {
        switch self {
        case .ready(let service, let capabilities):
            var frames: [[UInt8]] = [[], MDP.workerHeader, [MDP.Command.ready.rawValue], Array(service.utf8)]
            if let capabilities { frames.append(capabilities.encoded()) }
            return frames
        case .request(let client, let body):
            return [[], MDP.workerHeader, [MDP.Command.request.rawValue], client, []] + body
        case .reply(let client, let body):
            return [[], MDP.workerHeader, [MDP.Command.reply.rawValue], client, []] + body
        case .heartbeat:
            return [[], MDP.workerHeader, [MDP.Command.heartbeat.rawValue]]
        case .refresh(let capabilities):
            return [[], MDP.workerHeader, [MDP.Command.heartbeat.rawValue], capabilities.encoded()]
        case .disconnect:
            return [[], MDP.workerHeader, [MDP.Command.disconnect.rawValue]]
        }
    }

    /// Parses frames that start with the empty delimiter; throws a `WireError` naming the bad frame.
    public init(frames: [[UInt8]]) throws(WireError) {
        try self.init(frames: frames[...])
    }

    /// Parses frames that start with the empty delimiter (a slice, such as the frames after a routing id).
    public init(frames: ArraySlice<[UInt8]>) throws(WireError) {
        let base = frames.startIndex
        let count = frames.count
        guard count >= 3 else { throw WireError("expected at least 3 frames, got \(count)") }
        guard frames[base].isEmpty else { throw WireError("frame 0 must be the empty delimiter") }
        guard frames[base + 1] == MDP.workerHeader else { throw WireError("frame 1 is not \"MDPW01\"") }
        guard frames[base + 2].count == 1, let command = MDP.Command(rawValue: frames[base + 2][0]) else {
            throw WireError("frame 2 is not a known MDP worker command")
        }
        switch command {
        case .ready:
            guard count == 4 || count == 5 else {
                throw WireError("READY takes 4 or 5 frames, got \(count)")
            }
            guard let service = String(validating: frames[base + 3], as: UTF8.self), !service.isEmpty else {
                throw WireError("READY frame 3 (service name) must be non-empty UTF-8")
            }
            let capabilities = count == 5 ? try Capabilities(decoding: frames[base + 4]) : nil
            self = .ready(service: service, capabilities: capabilities)
        case .request, .reply:
            guard count >= 5 else { throw WireError("\(command) takes at least 5 frames, got \(count)") }
            guard frames[base + 4].isEmpty else { throw WireError("\(command) frame 4 must be empty") }
            let body = Array(frames[(base + 5)...])
            let client = frames[base + 3]
            self = command == .request ? .request(client: client, body: body) : .reply(client: client, body: body)
        case .heartbeat:
            guard count == 3 || count == 4 else { throw WireError("HEARTBEAT takes 3 or 4 frames, got \(count)") }
            self = count == 4 ? .refresh(capabilities: try Capabilities(decoding: frames[base + 3])) : .heartbeat
        case .disconnect:
            // Some workers add a reason frame; accept and ignore it.
            guard count <= 4 else { throw WireError("DISCONNECT takes 3 frames, got \(count)") }
            self = .disconnect
        }
    }
}

/// A client-protocol message (`MDPC01`), as sent by a client's DEALER/REQ.
public struct ClientMessage: Equatable, Sendable {
    public var service: String
    public var body: [[UInt8]]

    public init(service: String, body: [[UInt8]]) {
        self.service = service
        self.body = body
    }

    /// Frames starting with the empty delimiter.
    public var frames: [[UInt8]] {
        [[], MDP.clientHeader, Array(service.utf8)] + body
    }

    public init(frames: [[UInt8]]) throws(WireError) {
        guard frames.count >= 3 else { throw WireError("expected at least 3 frames, got \(frames.count)") }
        guard frames[0].isEmpty else { throw WireError("frame 0 must be the empty delimiter") }
        guard frames[1] == MDP.clientHeader else { throw WireError("frame 1 is not \"MDPC01\"") }
        guard let service = String(validating: frames[2], as: UTF8.self), !service.isEmpty else {
            throw WireError("frame 2 (service name) must be non-empty UTF-8")
        }
        self.service = service
        self.body = Array(frames[3...])
    }
}

/// A frame sequence that breaks the protocol, with what is wrong with it.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension WorkerMessage {
    /// The command's name as RFC 7 spells it, for messages about a peer.
    public var commandName: String {
        switch self {
        case .ready: MDP.Command.ready.description
        case .request: MDP.Command.request.description
        case .reply: MDP.Command.reply.description
        case .heartbeat, .refresh: MDP.Command.heartbeat.description
        case .disconnect: MDP.Command.disconnect.description
        }
    }

    /// Parses a message as the broker's ROUTER receives it: the routing id, then the worker frames.
    /// Returns nil when frame 2 is not `MDPW01` (not a worker message at all).
    public static func routed(_ frames: [[UInt8]]) throws(WireError) -> (peer: [UInt8], message: WorkerMessage)? {
        guard frames.count >= 3, frames[2] == MDP.workerHeader else { return nil }
        return (frames[0], try WorkerMessage(frames: frames[1...]))
    }

    /// The frames of a REQUEST to `peer`, routing id first, built in one go (this is the item path).
    /// `reservingFor`: frames the caller will append after the body.
    public static func routedRequest(to peer: [UInt8], client: [UInt8], body: some Collection<[UInt8]>, headerFrame: [UInt8]? = nil,
                                     reservingFor more: Int = 0) -> [[UInt8]] {
        var frames: [[UInt8]] = [peer, [], MDP.workerHeader, [MDP.Command.request.rawValue], client, []]
        frames.reserveCapacity(7 + body.count + more)
        if let headerFrame { frames.append(headerFrame) }
        frames.append(contentsOf: body)
        return frames
    }
}

extension ClientMessage {
    /// Parses a message as the broker's ROUTER receives it; nil when frame 2 is not `MDPC01`.
    public static func routed(_ frames: [[UInt8]]) throws(WireError) -> (peer: [UInt8], message: ClientMessage)? {
        guard frames.count >= 3, frames[2] == MDP.clientHeader else { return nil }
        return (frames[0], try ClientMessage(frames: Array(frames[1...])))
    }
}

/// A worker's REPLY body, decoded by the kind of worker that sent it.
public enum WorkerReply: Equatable, Sendable {
    /// A LANCompute worker: a reply batch (its `client` frame is empty or the request's).
    case batch(ReplyBatch)
    /// A plain MDP/0.1 worker: the echoed item token, and the item's outputs.
    case single(ItemToken, outputs: [[UInt8]])

    /// `batched`: the worker announced the LANCompute protocol on READY.
    public init(client: [UInt8], body: [[UInt8]], batched: Bool) throws(WireError) {
        if batched {
            self = .batch(try ReplyBatch(frames: body))
        } else {
            self = .single(try ItemToken(bytes: client), outputs: body)
        }
    }
}
