// Waiting on several sockets (and plain file descriptors) at once: `zmq_poll`.

import CZeroMQ

/// Readiness events for ``Poller`` and ``Socket/poll(_:timeout:)``.
public struct PollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// A message can be received (`ZMQ_POLLIN`).
    public static let `in` = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking (`ZMQ_POLLOUT`).
    public static let out = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// An error condition, for plain file descriptors (`ZMQ_POLLERR`).
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))
}

/// A set of sockets and file descriptors to wait on together.
///
/// Like sockets, a poller belongs to one thread. Items are addressed by the index
/// ``add(_:events:)`` returned.
public final class Poller {
    private var items: [zmq_pollitem_t] = []
    private var sockets: [Socket?] = []

    public init() {}

    /// Adds a socket to wait on; returns its index.
    @discardableResult
    public func add(_ socket: Socket, events: PollEvents = .in) -> Int {
        // A closed socket polls as nothing rather than crashing the poll loop; fd -1 is ignored by poll(2).
        let handle = socket.openHandle
        items.append(zmq_pollitem_t(socket: handle, fd: -1, events: handle == nil ? 0 : events.rawValue, revents: 0))
        sockets.append(socket)
        return items.count - 1
    }

    /// Adds a plain file descriptor (a pipe, a UDP socket) to wait on; returns its index.
    @discardableResult
    public func add(fileDescriptor: Int32, events: PollEvents = .in) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: events.rawValue, revents: 0))
        sockets.append(nil)
        return items.count - 1
    }

    /// Changes which events the item at `index` is waited for.
    public func setEvents(_ events: PollEvents, at index: Int) {
        if let socket = sockets[index], socket.openHandle == nil { return }
        items[index].events = events.rawValue
    }

    /// The number of items.
    public var count: Int { items.count }

    /// Waits until at least one item is ready or `timeout` passes (nil: forever; zero: just look).
    /// Returns how many items are ready. Interrupted waits (EINTR) return 0.
    public func poll(timeout: Duration?) throws(ZMQError) -> Int {
        // Rounded up, so a poll never returns before its timeout; nil waits forever.
        let milliseconds = timeout.map { Int(wholeMilliseconds($0, roundingUp: true)) } ?? -1
        for index in items.indices {
            items[index].revents = 0
            // A socket closed since it was added must not reach zmq_poll with its freed handle.
            if let socket = sockets[index], items[index].socket != nil, socket.openHandle == nil {
                items[index].socket = nil
                items[index].fd = -1
                items[index].events = 0
            }
        }
        let count = items.count
        let result = items.withUnsafeMutableBufferPointer { buffer in
            zmq_poll(buffer.baseAddress, Int32(count), milliseconds)
        }
        if result < 0 {
            let error = ZMQError.current("zmq_poll")
            if error.code == .interrupted { return 0 }
            throw error
        }
        return Int(result)
    }

    /// The events that were ready at `index` after the last ``poll(timeout:)``.
    public func readyEvents(at index: Int) -> PollEvents {
        PollEvents(rawValue: items[index].revents)
    }

    /// Whether the item at `index` had a message to receive after the last ``poll(timeout:)``.
    public func isReadable(_ index: Int) -> Bool {
        readyEvents(at: index).contains(.in)
    }
}

@available(*, unavailable)
extension Poller: Sendable {}

/// `duration` in whole milliseconds, clamped to 0...Int32.max so that no duration can overflow.
func wholeMilliseconds(_ duration: Duration, roundingUp: Bool) -> Int32 {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
    if seconds >= Int64(Int32.max / 1000) { return Int32.max }
    let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
    let fraction = roundingUp
        ? (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond
        : attoseconds / attosecondsPerMillisecond
    return Int32(clamping: max(0, seconds * 1000 + fraction))
}
