// The one error type of the binding: a libzmq error code plus the operation that failed.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libzmq (or POSIX) error number, with its Swift and C names.
///
/// Compare against the named constants: `error.code == .again`.
public struct ZMQErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Resource temporarily unavailable; the non-blocking calls report it as "would block" instead.
    public static let again = ZMQErrorCode(rawValue: EAGAIN)
    /// The context was terminated or shut down while the call was in progress.
    public static let terminated = ZMQErrorCode(rawValue: ETERM)
    /// The operation is not valid for the socket's current state (for example a REQ sending twice).
    public static let invalidState = ZMQErrorCode(rawValue: EFSM)
    /// An argument was invalid (an option value, an endpoint).
    public static let invalidArgument = ZMQErrorCode(rawValue: EINVAL)
    /// The endpoint's transport is not supported.
    public static let protocolNotSupported = ZMQErrorCode(rawValue: EPROTONOSUPPORT)
    /// The transport is not compatible with the socket type.
    public static let incompatibleProtocol = ZMQErrorCode(rawValue: ENOCOMPATPROTO)
    /// The address is already in use.
    public static let addressInUse = ZMQErrorCode(rawValue: EADDRINUSE)
    /// The address is not local to this machine.
    public static let addressNotAvailable = ZMQErrorCode(rawValue: EADDRNOTAVAIL)
    /// No such interface or device (a bad `tcp://name:port` interface).
    public static let noDevice = ZMQErrorCode(rawValue: ENODEV)
    /// The operation is not supported by this socket type.
    public static let notSupported = ZMQErrorCode(rawValue: ENOTSUP)
    /// ROUTER_MANDATORY: the routing id names no connected peer.
    public static let hostUnreachable = ZMQErrorCode(rawValue: EHOSTUNREACH)
    /// The endpoint was not bound or connected (on unbind/disconnect).
    public static let noEntry = ZMQErrorCode(rawValue: ENOENT)
    /// Too many open sockets or threads.
    public static let tooManyFiles = ZMQErrorCode(rawValue: EMFILE)
    /// A blocking call was interrupted by a signal.
    public static let interrupted = ZMQErrorCode(rawValue: EINTR)
    /// The socket was closed, or the handle is not a socket.
    public static let notSocket = ZMQErrorCode(rawValue: ENOTSOCK)
    /// The message is too large for the transport or option.
    public static let messageTooLarge = ZMQErrorCode(rawValue: EMSGSIZE)
    /// No thread is available to run the operation.
    public static let noThread = ZMQErrorCode(rawValue: EMTHREAD)
    /// A memory fault (a bad buffer): a programming error.
    public static let fault = ZMQErrorCode(rawValue: EFAULT)
    /// Memory could not be allocated (for example a message of an impossible size).
    public static let outOfMemory = ZMQErrorCode(rawValue: ENOMEM)
    /// No buffer space available (too many connections or queued messages for the system).
    public static let noBufferSpace = ZMQErrorCode(rawValue: ENOBUFS)
    /// A protocol error, for example a failed security handshake.
    public static let protocolError = ZMQErrorCode(rawValue: EPROTO)

    private static let names: [Int32: (swift: String, c: String)] = [
        EAGAIN: ("again", "EAGAIN"), ETERM: ("terminated", "ETERM"), EFSM: ("invalidState", "EFSM"),
        EINVAL: ("invalidArgument", "EINVAL"), EPROTONOSUPPORT: ("protocolNotSupported", "EPROTONOSUPPORT"),
        ENOCOMPATPROTO: ("incompatibleProtocol", "ENOCOMPATPROTO"), EADDRINUSE: ("addressInUse", "EADDRINUSE"),
        EADDRNOTAVAIL: ("addressNotAvailable", "EADDRNOTAVAIL"), ENODEV: ("noDevice", "ENODEV"),
        ENOTSUP: ("notSupported", "ENOTSUP"), EHOSTUNREACH: ("hostUnreachable", "EHOSTUNREACH"),
        ENOENT: ("noEntry", "ENOENT"), EMFILE: ("tooManyFiles", "EMFILE"), EINTR: ("interrupted", "EINTR"),
        ENOTSOCK: ("notSocket", "ENOTSOCK"), EMSGSIZE: ("messageTooLarge", "EMSGSIZE"),
        EMTHREAD: ("noThread", "EMTHREAD"), EFAULT: ("fault", "EFAULT"),
        ENOMEM: ("outOfMemory", "ENOMEM"), ENOBUFS: ("noBufferSpace", "ENOBUFS"), EPROTO: ("protocolError", "EPROTO"),
    ]

    /// The Swift constant's name, e.g. `again`.
    public var name: String { Self.names[rawValue]?.swift ?? "errno\(rawValue)" }
    /// The C constant's name, e.g. `EAGAIN`.
    public var cName: String { Self.names[rawValue]?.c ?? "errno \(rawValue)" }
    /// libzmq's own text for the code (`zmq_strerror`).
    public var message: String { String(cString: zmq_strerror(rawValue)) }

    public var description: String { "\(cName) (\(message))" }
}

/// A failed libzmq call: which operation, and the error code it returned.
public struct ZMQError: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: ZMQErrorCode
    /// What was being done, e.g. `bind(tcp://127.0.0.1:5555)` or `zmq_msg_recv`.
    public let operation: String

    public init(code: ZMQErrorCode, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The error libzmq reports for the calling thread right now.
    static func current(_ operation: @autoclosure () -> String) -> ZMQError {
        ZMQError(code: ZMQErrorCode(rawValue: zmq_errno()), operation: operation())
    }

    public var description: String { "\(operation) failed: \(code)" }
}

/// Runs a libzmq call that returns -1 on failure, retrying EINTR.
/// Returns nil for EAGAIN when `wouldBlockIsNil`; a programming error (ENOTSOCK, EFAULT) traps.
/// ENOTSOCK cannot come from a correct program: a closed ``Socket`` never hands libzmq its old handle.
@inline(__always)
func zmqCall(
    _ operation: @autoclosure () -> String, wouldBlockIsNil: Bool = false, _ body: () -> Int32
) throws(ZMQError) -> Int32? {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = zmq_errno()
        if code == EINTR { continue }
        if code == EAGAIN && wouldBlockIsNil { return nil }
        if code == EFAULT || code == ENOTSOCK {
            preconditionFailure("\(operation()): libzmq reported \(ZMQErrorCode(rawValue: code).cName) (an invalid handle or buffer)")
        }
        throw ZMQError(code: ZMQErrorCode(rawValue: code), operation: operation())
    }
}
