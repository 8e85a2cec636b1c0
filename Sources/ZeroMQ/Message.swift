// A zero-copy message frame over `zmq_msg_t`.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One frame as libzmq holds it (`zmq_msg_t`): received without copying, sent without copying.
///
/// A message is owned by one thread at a time, like a socket. Sending it hands its
/// content to libzmq; the message is then empty and can be reused.
public final class Message {
    let pointer: UnsafeMutablePointer<zmq_msg_t>

    /// An empty message (zero bytes).
    public init() {
        pointer = .allocate(capacity: 1)
        zmq_msg_init(pointer)
    }

    /// A message of `count` bytes, uninitialised; fill it through ``withUnsafeMutableBytes(_:)``.
    /// Throws ``ZMQErrorCode/invalidArgument`` for a negative count (libzmq would wrap it round to
    /// a tiny allocation) and ``ZMQErrorCode/outOfMemory`` when the bytes cannot be allocated.
    public init(count: Int) throws(ZMQError) {
        pointer = .allocate(capacity: 1)
        // Once `pointer` is set, a throw runs deinit (zmq_msg_close + deallocate), so every
        // failure path leaves a valid empty message behind instead of freeing it here.
        guard count >= 0 else {
            zmq_msg_init(pointer)
            throw ZMQError(code: .invalidArgument, operation: "zmq_msg_init_size(\(count)): negative size")
        }
        if zmq_msg_init_size(pointer, count) != 0 {
            let error = ZMQError.current("zmq_msg_init_size(\(count))")
            zmq_msg_init(pointer)
            throw error
        }
    }

    /// A message holding a copy of `bytes`.
    public convenience init(bytes: some Collection<UInt8>) {
        // zmq_msg_init_size fails only on out-of-memory, which traps elsewhere in Swift anyway.
        try! self.init(count: bytes.count)
        withUnsafeMutableBytes { buffer in buffer.copyBytes(from: bytes) }
    }

    /// A message holding the UTF-8 bytes of `string`.
    public convenience init(string: String) {
        self.init(bytes: Array(string.utf8))
    }

    /// A message that refers to `buffer` without copying it; `free` is called (on a libzmq
    /// I/O thread, possibly) once libzmq no longer needs the bytes.
    public init(
        noCopy buffer: UnsafeMutableRawBufferPointer,
        free: @escaping @Sendable (UnsafeMutableRawBufferPointer) -> Void
    ) throws(ZMQError) {
        pointer = .allocate(capacity: 1)
        final class Box: @unchecked Sendable {
            // @unchecked: libzmq calls the free function exactly once, after which nothing touches the box.
            let buffer: UnsafeMutableRawBufferPointer
            let free: @Sendable (UnsafeMutableRawBufferPointer) -> Void
            init(_ buffer: UnsafeMutableRawBufferPointer, _ free: @escaping @Sendable (UnsafeMutableRawBufferPointer) -> Void) {
                self.buffer = buffer
                self.free = free
            }
        }
        let box = Unmanaged.passRetained(Box(buffer, free)).toOpaque()
        let rc = zmq_msg_init_data(pointer, buffer.baseAddress, buffer.count, { _, hint in
            let box = Unmanaged<Box>.fromOpaque(hint!).takeRetainedValue()
            box.free(box.buffer)
        }, box)
        if rc != 0 {
            let error = ZMQError.current("zmq_msg_init_data")
            Unmanaged<Box>.fromOpaque(box).release()
            // deinit still runs after this throw: leave it a valid empty message to close.
            zmq_msg_init(pointer)
            throw error
        }
    }

    deinit {
        zmq_msg_close(pointer)
        pointer.deallocate()
    }

    /// The number of bytes in the frame.
    public var count: Int { zmq_msg_size(pointer) }

    /// Whether more frames of the same multipart message follow this one (after a receive).
    public var hasMore: Bool { zmq_msg_more(pointer) != 0 }

    /// Reads the frame's bytes in place, without copying.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(pointer), count: count))
    }

    /// Writes the frame's bytes in place (before sending it).
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: zmq_msg_data(pointer), count: count))
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// The frame decoded as UTF-8 (invalid sequences repaired).
    public var string: String {
        withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// A metadata property of the connection the frame arrived on, after a receive: `User-Id` (what
    /// the ZAP handler said the peer is), `Peer-Address`, `Socket-Type`, or a ZMTP property the peer
    /// sent. Nil when the connection has no such property (a NULL-mechanism or inproc connection has
    /// no `User-Id`). The corresponding call is `zmq_msg_gets`.
    public func property(_ name: String) -> String? {
        name.withCString { property(cString: $0) }
    }

    /// As ``property(_:)``, with the name already a C string (a receive loop converts it once).
    public func property(cString name: UnsafePointer<CChar>) -> String? {
        guard let value = zmq_msg_gets(pointer, name) else { return nil }
        return String(cString: value)
    }

    /// The `User-Id` the ZAP handler gave the peer that sent the frame (`ZMQ_MSG_PROPERTY_USER_ID`).
    public static let userIDProperty = "User-Id"
}

@available(*, unavailable)
extension Message: Sendable {}
