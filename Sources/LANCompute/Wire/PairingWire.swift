// The pairing protocol's frames (worker DEALER to head ROUTER), encoded and parsed in one place.

/// One pairing message as the DEALER sends it and the ROUTER receives it after the routing id.
/// Every message starts with the protocol frame `LCPAIR1` and a command frame. See Docs/security.md.
public enum PairingMessage: Equatable, Sendable {
    /// Worker: the session id it picked, its CPace share `Ya` and its name (the associated data `ADa`).
    case start(sessionID: [UInt8], share: [UInt8], name: String)
    /// Head: its share `Yb`, its name (`ADb`), its long-term public key and the HMAC that proves it knows the code.
    case answer(share: [UInt8], name: String, publicKey: [UInt8], tag: [UInt8])
    /// Worker: its long-term public key and the HMAC that proves it knows the code.
    case confirm(publicKey: [UInt8], tag: [UInt8])
    /// Head: the worker's key is authorized under `name`.
    case done(name: String)
    /// Worker: the head's confirmation did not verify; the session is over. The head answers `refused`,
    /// so the worker knows the message arrived before it exits.
    case abort
    /// Worker: `done` arrived. The head waits for it (a second at most) before it exits, so that
    /// `done` is not lost with the head's process.
    case received
    /// Head: the run was refused; `code` is an LC code (`LC2077`), `text` says why.
    case refused(code: String, text: String)

    public static let protocolFrame: [UInt8] = Array("LCPAIR1".utf8)
    /// No pairing message comes near this; the socket profile drops a peer that sends more.
    public static let maxSize = 1024
    /// The longest name (worker or head) a message carries.
    public static let maxNameLength = 64
    public static let tagSize = 64

    public var frames: [[UInt8]] {
        switch self {
        case .start(let sessionID, let share, let name): [Self.protocolFrame, Array("start".utf8), sessionID, share, Array(name.utf8)]
        case .answer(let share, let name, let publicKey, let tag):
            [Self.protocolFrame, Array("answer".utf8), share, Array(name.utf8), publicKey, tag]
        case .confirm(let publicKey, let tag): [Self.protocolFrame, Array("confirm".utf8), publicKey, tag]
        case .done(let name): [Self.protocolFrame, Array("done".utf8), Array(name.utf8)]
        case .abort: [Self.protocolFrame, Array("abort".utf8)]
        case .received: [Self.protocolFrame, Array("received".utf8)]
        case .refused(let code, let text): [Self.protocolFrame, Array("refused".utf8), Array(code.utf8), Array(text.utf8)]
        }
    }

    /// Parses `frames`; the error names the frame that is wrong.
    public init(frames: [[UInt8]]) throws(PairingWireError) {
        guard frames.count >= 2, frames[0] == Self.protocolFrame else { throw PairingWireError("not a pairing message (no LCPAIR1 frame)") }
        let command = String(decoding: frames[1], as: UTF8.self)
        func expect(_ count: Int) throws(PairingWireError) {
            guard frames.count == count else { throw PairingWireError("'\(command)' has \(frames.count) frames, expected \(count)") }
        }
        func sized(_ index: Int, _ size: Int, _ what: String) throws(PairingWireError) -> [UInt8] {
            guard frames[index].count == size else { throw PairingWireError("'\(command)' frame \(index) (\(what)) has \(frames[index].count) bytes, expected \(size)") }
            return frames[index]
        }
        func name(_ index: Int) throws(PairingWireError) -> String {
            guard frames[index].count <= Self.maxNameLength, let text = String(validating: frames[index], as: UTF8.self) else {
                throw PairingWireError("'\(command)' frame \(index) (name) is not UTF-8 of at most \(Self.maxNameLength) bytes")
            }
            return text
        }
        switch command {
        case "start":
            try expect(5)
            self = .start(sessionID: try sized(2, CPace.sessionIDSize, "session id"), share: try sized(3, CPace.pointSize, "share"), name: try name(4))
        case "answer":
            try expect(6)
            self = .answer(share: try sized(2, CPace.pointSize, "share"), name: try name(3),
                           publicKey: try sized(4, 32, "public key"), tag: try sized(5, Self.tagSize, "tag"))
        case "confirm":
            try expect(4)
            self = .confirm(publicKey: try sized(2, 32, "public key"), tag: try sized(3, Self.tagSize, "tag"))
        case "done":
            try expect(3)
            self = .done(name: try name(2))
        case "abort":
            try expect(2)
            self = .abort
        case "received":
            try expect(2)
            self = .received
        case "refused":
            try expect(4)
            self = .refused(code: String(decoding: frames[2], as: UTF8.self), text: String(decoding: frames[3], as: UTF8.self))
        default:
            throw PairingWireError("unknown command '\(command.prefix(16))'")
        }
    }
}

/// Why frames are not a pairing message.
public struct PairingWireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { problem }
}
