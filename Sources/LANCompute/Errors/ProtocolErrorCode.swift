// The wire protocol error codes (LC3xxx) and the error that carries one.

/// The wire protocol error codes (LC3xxx): messages from the network that break the protocol.
/// They are counted and dropped, never fatal.
///
/// The raw value is the code's number; it is never reused or renumbered. `Docs/errors.md` has
/// one row per case, and a test holds the two together.
public enum ProtocolErrorCode: Int, Sendable, CaseIterable, CustomStringConvertible {
    case malformedMessage = 3001
    case outOfOrder = 3002
    case unknownStage = 3003
    case unknownService = 3004
    case requestBody = 3005
    case malformedFromBroker = 3006
    case malformedIntake = 3007
    case clientRequestsFull = 3008

    /// `LC` and the four digits, as printed: `LC3001`.
    public var code: String { "LC\(rawValue)" }
    public var description: String { code }

    /// What went wrong, in a few words.
    public var title: String {
        switch self {
        case .malformedMessage: "not an MDP/0.1 message, or a malformed one"
        case .outOfOrder: "a worker-protocol message out of order"
        case .unknownStage: "READY for a stage the worker cannot serve here"
        case .unknownService: "a request for an unknown service"
        case .requestBody: "a request without exactly one body frame"
        case .malformedFromBroker: "a malformed message from the broker"
        case .malformedIntake: "a malformed acknowledged-intake batch"
        case .clientRequestsFull: "a client request refused: the broker holds its limit of client requests"
        }
    }

    /// What to do about it: the "How to fix" column of `Docs/errors.md`, word for word.
    public var remedy: String {
        switch self {
        case .malformedMessage: "Fix the peer to send MDP/0.1 frames; see protocol.md."
        case .outOfOrder: "Open a new DEALER socket (a new routing id) for each registration."
        case .unknownStage: "Use a stage name from the topology; check `requires` against `lancompute doctor` on the worker's machine; for a chained stage, use a LANCompute worker or set `chain: false`."
        case .unknownService: "Use a stage name, `mmi.service` or `mmi.topology`."
        case .requestBody: "Send one frame: the item."
        case .malformedFromBroker: "Point workers at a LANCompute broker."
        case .malformedIntake: "Follow protocol.md, section 14.1."
        case .clientRequestsFull: "Wait for answers before sending more requests, or raise `--max-client-bytes` on the broker."
        }
    }
}

/// A message that broke the protocol: its code, and what was wrong with it.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: ProtocolErrorCode
    public let message: String

    public init(_ code: ProtocolErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `LCnnnn: message`, the form the broker logs and publishes as a `reason`.
    public var description: String { "\(code.code): \(message)" }
}
