// The libzmq context: owns I/O threads; kept alive by every socket made from it.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ZeroMQ context (`zmq_ctx_new`).
///
/// Every ``Socket`` holds a strong reference to the context it was made from, so the
/// context is only terminated (`zmq_ctx_term`) once its last socket is closed; that
/// is why dropping a context never hangs. ``shutdown()`` makes blocking calls on all
/// of its sockets, on any thread, return ``ZMQErrorCode/terminated``.
public final class Context: @unchecked Sendable {
    // @unchecked Sendable: libzmq contexts are thread-safe; `handle` never changes after init.
    let handle: UnsafeMutableRawPointer

    /// A context with `ioThreads` background I/O threads (libzmq's default is 1).
    public init(ioThreads: Int = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.current("zmq_ctx_new") }
        self.handle = handle
        if ioThreads != 1 {
            guard zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreads)) == 0 else {
                let error = ZMQError.current("zmq_ctx_set(ZMQ_IO_THREADS, \(ioThreads))")
                zmq_ctx_term(handle)
                throw error
            }
        }
    }

    /// A context with `ioThreads` I/O threads that allows at most `maxSockets` sockets at once
    /// (`ZMQ_MAX_SOCKETS`, libzmq's default 1023); one more fails with ``ZMQErrorCode/tooManyFiles``.
    public convenience init(ioThreads: Int = 1, maxSockets: Int) throws(ZMQError) {
        try self.init(ioThreads: ioThreads)
        // Fails only for a value below 1 and must happen before the first socket, as here.
        // A failure runs deinit, which terminates the socketless context at once.
        guard zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, Int32(clamping: maxSockets)) == 0 else {
            throw ZMQError.current("zmq_ctx_set(ZMQ_MAX_SOCKETS, \(maxSockets))")
        }
    }

    /// A process-wide context for code that does not want to manage one.
    public static let shared: Context = {
        do { return try Context() } catch { fatalError("cannot create the shared ZeroMQ context: \(error)") }
    }()

    /// Makes every blocking call on this context's sockets fail with ``ZMQErrorCode/terminated``.
    /// Sockets must still be closed (by their owning threads) before the context goes away.
    /// The corresponding call is `zmq_ctx_shutdown`.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    /// The largest number of sockets this context allows (`ZMQ_MAX_SOCKETS`).
    public var maxSockets: Int {
        get { Int(zmq_ctx_get(handle, ZMQ_MAX_SOCKETS)) }
    }

    deinit {
        // No socket can be open here (each one retains the context), so this cannot block.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}

/// Facts about the libzmq linked into this process.
public enum ZMQLibrary {
    /// The libzmq version, e.g. (4, 3, 4).
    public static var version: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }

    /// The version as text, e.g. `4.3.4`.
    public static var versionString: String {
        let v = version
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// Whether libzmq was built with a capability: `curve`, `ipc`, `pgm`, `tipc`, `norm`, `draft`, `gssapi`.
    /// The corresponding call is `zmq_has`.
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) != 0
    }
}
