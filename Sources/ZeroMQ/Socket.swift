// A ZeroMQ socket: creation, endpoints, sending and receiving frames and multipart messages.

import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The socket types the binding supports.
public enum SocketType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case pair = 0
    case pub = 1
    case sub = 2
    case req = 3
    case rep = 4
    case dealer = 5
    case router = 6
    case pull = 7
    case push = 8
    case xpub = 9
    case xsub = 10

    public var description: String {
        switch self {
        case .pair: "PAIR"
        case .pub: "PUB"
        case .sub: "SUB"
        case .req: "REQ"
        case .rep: "REP"
        case .dealer: "DEALER"
        case .router: "ROUTER"
        case .pull: "PULL"
        case .push: "PUSH"
        case .xpub: "XPUB"
        case .xsub: "XSUB"
        }
    }
}

/// A ZeroMQ socket.
///
/// A socket belongs to the thread that uses it: it is not `Sendable`, and every call
/// on it must come from one thread at a time (libzmq sockets are not thread-safe).
/// It keeps its ``Context`` alive, and closes itself when released; ``close()`` may
/// also be called explicitly, any number of times.
///
/// New sockets have `LINGER` set to zero, so closing one never waits for unsent
/// messages: delivery must be confirmed by the application, never assumed from LINGER.
public final class Socket {
    public let type: SocketType
    public let context: Context
    /// Reused by multipart receives, which copy each frame out of it.
    private lazy var scratch = Message()
    private var handle: UnsafeMutableRawPointer?
    /// The inproc endpoint of the socket's current monitor: libzmq keeps one monitor per socket,
    /// so only the monitor named here may stop it.
    var monitorEndpoint: String?

    /// Creates a socket of `type` in `context` (`zmq_socket`).
    public init(_ type: SocketType, context: Context = .shared) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.current("zmq_socket(\(type))")
        }
        self.type = type
        self.context = context
        self.handle = handle
        var zero: Int32 = 0
        zmq_setsockopt(handle, ZMQ_LINGER, &zero, MemoryLayout<Int32>.size)
    }

    deinit { close() }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { handle == nil }

    /// Closes the socket (`zmq_close`); later calls do nothing.
    public func close() {
        guard let handle else { return }
        self.handle = nil
        zmq_close(handle)
    }

    func open(_ operation: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(code: .notSocket, operation: operation() + " on a closed socket") }
        return handle
    }

    // MARK: Endpoints

    /// Binds to `endpoint`, e.g. `tcp://127.0.0.1:*`, `ipc:///tmp/x`, `inproc://name` (`zmq_bind`).
    /// Read the endpoint actually bound (the chosen port for `*`) from ``lastEndpoint``.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let handle = try open("bind(\(endpoint))")
        _ = try zmqCall("bind(\(endpoint))") { zmq_bind(handle, endpoint) }
    }

    /// Connects to `endpoint` (`zmq_connect`); the connection is made in the background.
    public func connect(_ endpoint: String) throws(ZMQError) {
        let handle = try open("connect(\(endpoint))")
        _ = try zmqCall("connect(\(endpoint))") { zmq_connect(handle, endpoint) }
    }

    /// Stops listening on an endpoint given to ``bind(_:)`` (or read from ``lastEndpoint``).
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let handle = try open("unbind(\(endpoint))")
        _ = try zmqCall("unbind(\(endpoint))") { zmq_unbind(handle, endpoint) }
    }

    /// Drops the connection to an endpoint given to ``connect(_:)``.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let handle = try open("disconnect(\(endpoint))")
        _ = try zmqCall("disconnect(\(endpoint))") { zmq_disconnect(handle, endpoint) }
    }

    /// The endpoint last bound or connected, with wildcards resolved (`tcp://127.0.0.1:41234`).
    /// The corresponding option is `ZMQ_LAST_ENDPOINT`.
    public var lastEndpoint: String {
        get throws(ZMQError) { try get(.lastEndpoint) }
    }

    // MARK: Sending

    /// Sends one frame; `more` marks it as a non-final part of a multipart message.
    /// Blocks while the high-water mark is reached (or until `ZMQ_SNDTIMEO`).
    public func send(_ frame: some Collection<UInt8>, more: Bool = false) throws(ZMQError) {
        _ = try sendFrame(frame, flags: more ? ZMQ_SNDMORE : 0)
    }

    /// Sends `frame` as one frame: the same as the `Collection` form, but without
    /// generic dispatch, for the hot path of code that sends byte arrays.
    public func send(_ frame: [UInt8], more: Bool = false) throws(ZMQError) {
        let flags = more ? ZMQ_SNDMORE : 0
        let outcome = frame.withUnsafeBytes { buffer in
            Result { () throws(ZMQError) -> Bool in try sendBuffer(buffer, flags: flags) }
        }
        _ = try outcome.get()
    }

    /// Sends the bytes of `buffer` (copied by libzmq before this returns) as one frame.
    public func send(_ buffer: UnsafeRawBufferPointer, more: Bool = false) throws(ZMQError) {
        _ = try sendBuffer(buffer, flags: more ? ZMQ_SNDMORE : 0)
    }

    /// Sends the UTF-8 bytes of `string` as one frame.
    public func send(_ string: String, more: Bool = false) throws(ZMQError) {
        _ = try sendFrame(string.utf8, flags: more ? ZMQ_SNDMORE : 0)
    }

    /// Sends a message without copying its bytes; the message is empty afterwards.
    public func send(_ message: Message, more: Bool = false) throws(ZMQError) {
        _ = try sendMessage(message, flags: more ? ZMQ_SNDMORE : 0)
    }

    /// Sends every frame as one multipart message.
    public func send<Frame: Collection<UInt8>>(multipart frames: [Frame]) throws(ZMQError) {
        _ = try sendMultipart(frames, dontWait: false)
    }

    /// Sends every frame as one multipart message: the byte-array form, without generic dispatch.
    public func send(multipart frames: [[UInt8]]) throws(ZMQError) {
        _ = try sendByteFrames(frames, dontWait: false)
    }

    /// Sends a multipart message of byte arrays unless the first frame would block; false if it would.
    @discardableResult
    public func trySend(multipart frames: [[UInt8]]) throws(ZMQError) -> Bool {
        try sendByteFrames(frames, dontWait: true)
    }

    private func sendByteFrames(_ frames: [[UInt8]], dontWait: Bool) throws(ZMQError) -> Bool {
        let handle = try open("zmq_send")
        let last = frames.count - 1
        for index in frames.indices {
            var flags: Int32 = index == last ? 0 : ZMQ_SNDMORE
            // As in sendMultipart: only the first frame may meet a full pipe.
            if dontWait && index == 0 { flags |= ZMQ_DONTWAIT }
            let outcome = frames[index].withUnsafeBytes { buffer in
                Result { () throws(ZMQError) -> Bool in
                    try zmqCall("zmq_send", wouldBlockIsNil: flags & ZMQ_DONTWAIT != 0) {
                        zmq_send(handle, buffer.baseAddress, buffer.count, flags)
                    } != nil
                }
            }
            if !(try outcome.get()) { return false }
        }
        return true
    }

    /// Sends one frame unless that would block; returns false (sending nothing) if it would.
    @discardableResult
    public func trySend(_ frame: some Collection<UInt8>, more: Bool = false) throws(ZMQError) -> Bool {
        try sendFrame(frame, flags: ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0))
    }

    /// Sends a multipart message unless the first frame would block; returns false if it would.
    /// Once the first frame is queued the rest cannot block (libzmq queues messages whole).
    @discardableResult
    public func trySend<Frame: Collection<UInt8>>(multipart frames: [Frame]) throws(ZMQError) -> Bool {
        try sendMultipart(frames, dontWait: true)
    }

    private func sendMultipart<Frame: Collection<UInt8>>(_ frames: [Frame], dontWait: Bool) throws(ZMQError) -> Bool {
        if frames.isEmpty { return true }
        for (index, frame) in frames.enumerated() {
            let last = index == frames.count - 1
            var flags: Int32 = last ? 0 : ZMQ_SNDMORE
            // Only the first frame can meet a full pipe (libzmq counts whole messages against the
            // high-water mark), so later frames are sent without DONTWAIT: a message is never cut short.
            if dontWait && index == 0 { flags |= ZMQ_DONTWAIT }
            if !(try sendFrame(frame, flags: flags)) { return false }
        }
        return true
    }

    private func sendFrame(_ frame: some Collection<UInt8>, flags: Int32) throws(ZMQError) -> Bool {
        let outcome: Result<Bool, ZMQError>? = frame.withContiguousStorageIfAvailable { buffer in
            Result { () throws(ZMQError) -> Bool in try sendBuffer(UnsafeRawBufferPointer(buffer), flags: flags) }
        }
        if let outcome { return try outcome.get() }
        return try sendMessage(Message(bytes: frame), flags: flags)
    }

    /// Sends the bytes (copied by `zmq_send`); false when DONTWAIT was asked and the send would block.
    private func sendBuffer(_ buffer: UnsafeRawBufferPointer, flags: Int32) throws(ZMQError) -> Bool {
        let handle = try open("zmq_send")
        return try zmqCall("zmq_send", wouldBlockIsNil: flags & ZMQ_DONTWAIT != 0) {
            zmq_send(handle, buffer.baseAddress, buffer.count, flags)
        } != nil
    }

    private func sendMessage(_ message: Message, flags: Int32) throws(ZMQError) -> Bool {
        let handle = try open("zmq_msg_send")
        let dontWait = flags & ZMQ_DONTWAIT != 0
        return try zmqCall("zmq_msg_send", wouldBlockIsNil: dontWait) {
            zmq_msg_send(message.pointer, handle, flags)
        } != nil
    }

    // MARK: Receiving

    /// Receives one frame, whatever its size. Blocks until one arrives (or until `ZMQ_RCVTIMEO`,
    /// then throws ``ZMQErrorCode/again``). Check ``hasMore`` for further parts.
    public func receive() throws(ZMQError) -> [UInt8] {
        let message = try receiveMessage()
        return message.bytes
    }

    /// Receives one frame as a ``Message``, without copying its bytes.
    public func receiveMessage() throws(ZMQError) -> Message {
        let message = Message()
        _ = try receive(into: message, dontWait: false)
        return message
    }

    /// Receives one frame as UTF-8 text.
    public func receiveString() throws(ZMQError) -> String {
        try receiveMessage().string
    }

    /// Receives every frame of the next multipart message.
    public func receiveMultipart() throws(ZMQError) -> [[UInt8]] {
        try receiveMultipart(dontWait: false)!
    }

    /// Receives one frame if one is waiting; nil if none is (would block).
    public func tryReceive() throws(ZMQError) -> [UInt8]? {
        let message = Message()
        guard try receive(into: message, dontWait: true) else { return nil }
        return message.bytes
    }

    /// Receives a whole multipart message if one is waiting; nil if none is.
    public func tryReceiveMultipart() throws(ZMQError) -> [[UInt8]]? {
        try receiveMultipart(dontWait: true)
    }

    /// Receives one frame into `buffer`, copying at most `buffer.count` bytes; returns the frame's
    /// full size, which is larger than `buffer.count` when the frame did not fit (the rest is dropped,
    /// never read past). Returns nil when `dontWait` and nothing is waiting.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, dontWait: Bool = false) throws(ZMQError) -> Int? {
        let message = Message()
        guard try receive(into: message, dontWait: dontWait) else { return nil }
        let size = message.count
        message.withUnsafeBytes { frame in
            let copied = min(size, buffer.count)
            if copied > 0 { buffer.baseAddress!.copyMemory(from: frame.baseAddress!, byteCount: copied) }
        }
        return size
    }

    /// Receives into an existing message (reusing it); false when `dontWait` and nothing is waiting.
    public func receive(into message: Message, dontWait: Bool = false) throws(ZMQError) -> Bool {
        let handle = try open("zmq_msg_recv")
        return try zmqCall("zmq_msg_recv", wouldBlockIsNil: dontWait) {
            zmq_msg_recv(message.pointer, handle, dontWait ? ZMQ_DONTWAIT : 0)
        } != nil
    }

    private func receiveMultipart(dontWait: Bool) throws(ZMQError) -> [[UInt8]]? {
        let message = scratch
        guard try receive(into: message, dontWait: dontWait) else { return nil }
        var frames = [message.bytes]
        while message.hasMore {
            // The rest of a multipart message arrives with its first frame: this never blocks.
            _ = try receive(into: message, dontWait: false)
            frames.append(message.bytes)
        }
        return frames
    }

    /// Receives a whole multipart message if one is waiting, with the connection's metadata
    /// `property` (see ``Message/property(_:)``); nil if none is waiting.
    ///
    /// The property is read from the first frame that carries it: a ROUTER's routing-id frame is
    /// made by the socket itself and carries no metadata, the frames from the peer do.
    public func tryReceiveMultipart(property: String) throws(ZMQError) -> (frames: [[UInt8]], property: String?)? {
        let message = scratch
        // The name as a C string once per message, not once per frame asked.
        let outcome = property.withCString { name in
            Result { () throws(ZMQError) -> (frames: [[UInt8]], property: String?)? in
                guard try receive(into: message, dontWait: true) else { return nil }
                var value = message.property(cString: name)
                var frames = [message.bytes]
                while message.hasMore {
                    _ = try receive(into: message, dontWait: false)
                    if value == nil { value = message.property(cString: name) }
                    frames.append(message.bytes)
                }
                return (frames, value)
            }
        }
        return try outcome.get()
    }

    /// Whether the last frame received is followed by more parts (`ZMQ_RCVMORE`).
    public var hasMore: Bool {
        get throws(ZMQError) { try get(.receiveMore) }
    }

    // MARK: Polling one socket

    /// Waits up to `timeout` (nil: forever) until the socket is ready for `events`; returns the ready events.
    public func poll(_ events: PollEvents = .in, timeout: Duration?) throws(ZMQError) -> PollEvents {
        let poller = Poller()
        poller.add(self, events: events)
        _ = try poller.poll(timeout: timeout)
        return poller.readyEvents(at: 0)
    }

    func rawHandle(_ operation: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        try open(operation())
    }

    /// The libzmq handle, or nil once closed.
    var openHandle: UnsafeMutableRawPointer? { handle }
}

@available(*, unavailable)
extension Socket: Sendable {}
