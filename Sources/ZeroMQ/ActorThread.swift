// The actor primitive (czmq's zactor): a thread plus a PAIR pipe, a ready handshake, typed messages, a joined stop.

import CZeroMQ
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A message that crosses an actor's pipe: encoded as frames, decoded from them.
///
/// Each actor declares its commands (to the actor) and events (from it) as enums conforming to
/// this, so neither side decodes bytes by hand.
public protocol ActorMessage: Sendable {
    /// The frames that carry the message (at least one).
    var frames: [[UInt8]] { get }
    /// Decodes what ``frames`` produced; throws an error naming what is wrong otherwise.
    init(frames: [[UInt8]]) throws
}

/// For an actor that takes no commands or sends no events.
extension Never: ActorMessage {
    public var frames: [[UInt8]] { switch self {} }
    public init(frames: [[UInt8]]) throws { throw ActorError.unexpectedMessage("a message where none is expected") }
}

/// Failures of the actor machinery itself (the actor's own errors are passed through unchanged).
public enum ActorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The actor's body returned before it signalled ready.
    case endedBeforeReady(actor: String)
    /// The thread could not be started (`pthread_create` failed with this errno).
    case threadNotStarted(actor: String, errno: Int32)
    /// A pipe message did not decode.
    case unexpectedMessage(String)

    public var description: String {
        switch self {
        case .endedBeforeReady(let actor): "actor \(actor) ended before it was ready"
        case .threadNotStarted(let actor, let code): "cannot start the thread of actor \(actor): \(String(cString: strerror(code)))"
        case .unexpectedMessage(let what): "unexpected actor pipe message: \(what)"
        }
    }
}

/// What an actor reads from its pipe.
public enum ActorInput<Command> {
    case command(Command)
    /// The owner called ``ActorThread/stop()``: the actor should release what it holds and return.
    case terminate
}

/// The first frame of every pipe message says what it is; the rest belongs to the payload.
private enum PipeSignal: UInt8 {
    case message = 1
    case ready = 2
    case failed = 3
    case terminate = 4

    var frame: [UInt8] { [rawValue] }

    init(frames: [[UInt8]]) throws(ActorError) {
        guard let first = frames.first, first.count == 1, let signal = PipeSignal(rawValue: first[0]) else {
            throw .unexpectedMessage("the first frame is not a pipe signal")
        }
        self = signal
    }
}

/// What both ends of one actor share: how it failed, and whether its thread has ended.
private final class ActorOutcome: Sendable {
    let failure = Mutex<(any Error)?>(nil)
    let finished = Atomic<Bool>(false)
}

/// A thread that owns its sockets, driven over a PAIR pipe: the czmq `zactor` pattern.
///
/// The thread that creates an `ActorThread` owns its end of the pipe (``socket``), so the handle
/// is not `Sendable`: only that thread sends commands, receives events, and stops it. The actor's
/// body runs on a thread of its own with the other end (``ActorPipe``); it sets up whatever it
/// needs, calls ``ActorPipe/signalReady(_:)``, then serves until it reads ``ActorInput/terminate``.
///
/// - The initializer returns once the body signalled ready, or throws the error the body threw
///   before that (after joining its thread).
/// - An error the body throws after ready is thrown by the next ``receive(timeout:)`` or
///   ``tryReceive()`` on the owner's side.
/// - ``stop()`` sends terminate and joins the thread; releasing the handle does the same, so an
///   actor never outlives its owner.
///
/// ```swift
/// let actor = try ActorThread<Command, Event>(name: "aggregator", context: context) { pipe in
///     let pull = try makePull()          // setup: a failure here is thrown by the initializer
///     try pipe.signalReady(.bound(try pull.lastEndpoint))
///     let loop = PollLoop()
///     pipe.attach(to: loop) { command in ... }   // terminate stops the loop
///     loop.register(pull) { _ in ... }
///     try loop.run()
/// }
/// ```
public final class ActorThread<Command: ActorMessage, Event: ActorMessage> {
    /// The actor's name: its thread's name and part of its pipe's endpoint.
    public let name: String
    /// The owner's end of the pipe, to wait on in a ``Poller`` or ``PollLoop`` together with other sockets.
    public let socket: Socket
    /// The event the body passed to ``ActorPipe/signalReady(_:)``, if any.
    public private(set) var readyReport: Event?
    private let outcome: ActorOutcome
    private var thread: pthread_t?

    /// Starts the actor's thread and waits for it to be ready; throws the body's setup error.
    ///
    /// `name` names the thread (on Darwin) and the pipe
    /// (`inproc://actor-NAME-N`, unique in the process).
    public init(
        name: String, context: Context = .shared,
        body: @escaping @Sendable (ActorPipe<Command, Event>) throws -> Void
    ) throws {
        self.name = name
        let endpoint = "inproc://actor-\(name)-\(_counter.add(1, ordering: .relaxed).newValue)"
        let front = try Socket(.pair, context: context)
        // No HWM on either end: owner and actor send to each other, and two threads that each block
        // sending into a full queue the other is not reading deadlock. What crosses a pipe is
        // bounded by what the owner asks of the actor (credit, batches), not by the queue.
        try front.set(.sendHighWaterMark, 0)
        try front.set(.receiveHighWaterMark, 0)
        try front.bind(endpoint)
        socket = front
        let outcome = ActorOutcome()
        self.outcome = outcome

        let threadName = name
        let start = ThreadStart {
            setThreadName(threadName)
            defer { outcome.finished.store(true, ordering: .releasing) }
            let back: Socket
            do {
                back = try Socket(.pair, context: context)
                try back.set(.sendHighWaterMark, 0)
                try back.set(.receiveHighWaterMark, 0)
                try back.connect(endpoint)
            } catch {
                outcome.failure.withLock { $0 = error }
                return
            }
            let pipe = ActorPipe<Command, Event>(socket: back, name: threadName)
            do {
                try body(pipe)
                if !pipe.isReady { outcome.failure.withLock { $0 = ActorError.endedBeforeReady(actor: threadName) } }
            } catch {
                outcome.failure.withLock { $0 = error }
                // Wakes an owner polling the pipe; before ready, the owner watches `finished` too.
                _ = try? back.trySend(multipart: [PipeSignal.failed.frame])
            }
            back.close()
        }
        thread = try startThread(start, name: name)

        // Wait for ready, or for the thread to end without it (a setup failure).
        while true {
            var frames = try front.tryReceiveMultipart()
            if frames == nil {
                guard outcome.finished.load(ordering: .acquiring) else {
                    _ = try front.poll(.in, timeout: .milliseconds(20))
                    continue
                }
                // A ready signal sent just before the thread ended is still in the pipe.
                frames = try front.tryReceiveMultipart()
                guard frames != nil else { throw joinAndTakeFailure() }
            }
            let message = frames!
            switch try PipeSignal(frames: message) {
            case .ready:
                readyReport = message.count > 1 ? try Event(frames: Array(message.dropFirst())) : nil
                return
            case .failed:
                throw joinAndTakeFailure()
            case .message, .terminate:
                throw ActorError.unexpectedMessage("a message from actor \(name) before it was ready")
            }
        }
    }

    deinit { stop() }

    /// Whether the actor's thread has ended (by itself, by failing, or after ``stop()``).
    public var hasEnded: Bool { outcome.finished.load(ordering: .acquiring) }

    /// Sends a command to the actor. It never blocks: the pipe has no high-water mark, and once the
    /// actor has ended (a PAIR with no peer would block forever) it throws ``ZMQErrorCode/again``.
    public func send(_ command: Command) throws(ZMQError) {
        guard try socket.trySend(multipart: [PipeSignal.message.frame] + command.frames) else {
            throw ZMQError(code: .again, operation: "send to actor \(name), which has ended")
        }
    }

    /// The next event if one is waiting; nil if none is. Throws the actor's error if it failed.
    public func tryReceive() throws -> Event? {
        guard let frames = try socket.tryReceiveMultipart() else { return nil }
        return try decode(frames)
    }

    /// Waits up to `timeout` (nil: forever) for the next event; nil if none came in time.
    /// Throws the actor's error if it failed, and ``ActorError/endedBeforeReady(actor:)``-style
    /// failures never happen here: an actor that ends normally simply sends nothing more.
    public func receive(timeout: Duration?) throws -> Event? {
        guard try socket.poll(.in, timeout: timeout).contains(.in) else { return nil }
        return try tryReceive()
    }

    private func decode(_ frames: [[UInt8]]) throws -> Event {
        switch try PipeSignal(frames: frames) {
        case .message:
            return try Event(frames: Array(frames.dropFirst()))
        case .failed:
            throw outcome.failure.withLock { $0 } ?? ActorError.unexpectedMessage("actor \(name) failed without an error")
        case .ready, .terminate:
            throw ActorError.unexpectedMessage("a \(frames[0]) signal from actor \(name) after it was ready")
        }
    }

    /// Asks the actor to end (``ActorInput/terminate``) and waits until its thread has ended;
    /// later calls do nothing. The actor must read its pipe for this to return.
    public func stop() {
        guard thread != nil else { return }
        while !outcome.finished.load(ordering: .acquiring) {
            // A full pipe (the actor busy, not reading) or a context shut down: try again until it ends.
            if (try? socket.trySend(multipart: [PipeSignal.terminate.frame])) == true { break }
            if (try? socket.poll(.out, timeout: .milliseconds(10))) == nil { pause(milliseconds: 10) }
        }
        join()
    }

    /// Waits until the actor's thread has ended, without asking it to (for an actor that ends by
    /// itself); later calls do nothing.
    public func join() {
        guard let thread else { return }
        self.thread = nil
        pthread_join(thread, nil)
        socket.close()
    }

    private func joinAndTakeFailure() -> any Error {
        join()
        return outcome.failure.withLock { $0 } ?? ActorError.endedBeforeReady(actor: name)
    }
}

private let _counter = Atomic<UInt64>(0)

@available(*, unavailable)
extension ActorThread: Sendable {}

/// The actor's end of its pipe, used only on the actor's thread.
public final class ActorPipe<Command: ActorMessage, Event: ActorMessage> {
    /// The actor's end of the pipe, to wait on together with the actor's other sockets.
    public let socket: Socket
    /// The actor's name.
    public let name: String
    /// Whether ``signalReady(_:)`` has been called.
    public private(set) var isReady = false
    /// Whether ``ActorInput/terminate`` has been read.
    public private(set) var isTerminated = false

    init(socket: Socket, name: String) {
        self.socket = socket
        self.name = name
    }

    /// Tells the owner that setup succeeded (its initializer returns), with an optional report
    /// (say, the endpoint actually bound).
    public func signalReady(_ report: Event? = nil) throws(ZMQError) {
        precondition(!isReady, "actor \(name) signalled ready twice")
        isReady = true
        try socket.send(multipart: [PipeSignal.ready.frame] + (report?.frames ?? []))
    }

    /// Sends an event to the owner (the pipe has no high-water mark: it never blocks).
    public func send(_ event: Event) throws(ZMQError) {
        try socket.send(multipart: [PipeSignal.message.frame] + event.frames)
    }

    /// Waits for the next command or terminate.
    public func receive() throws -> ActorInput<Command> {
        try decode(try socket.receiveMultipart())
    }

    /// The next command or terminate if one is waiting; nil if none is.
    public func tryReceive() throws -> ActorInput<Command>? {
        guard let frames = try socket.tryReceiveMultipart() else { return nil }
        return try decode(frames)
    }

    private func decode(_ frames: [[UInt8]]) throws -> ActorInput<Command> {
        switch try PipeSignal(frames: frames) {
        case .message:
            return .command(try Command(frames: Array(frames.dropFirst())))
        case .terminate:
            isTerminated = true
            return .terminate
        case .ready, .failed:
            throw ActorError.unexpectedMessage("a \(frames[0]) signal sent to actor \(name)")
        }
    }

    /// Registers the pipe in `loop`: each command waiting goes to `handler`; terminate stops the loop.
    @discardableResult
    public func attach(to loop: PollLoop, handler: @escaping (Command) throws -> Void) -> PollLoop.Token {
        loop.register(socket) { [unowned self, unowned loop] _ in
            while let input = try self.tryReceive() {
                switch input {
                case .command(let command): try handler(command)
                case .terminate:
                    loop.stop()
                    return
                }
            }
        }
    }
}

@available(*, unavailable)
extension ActorPipe: Sendable {}

// MARK: Threads

/// The closure a new thread runs, passed through `pthread_create`'s context pointer.
private final class ThreadStart: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

private func startThread(_ start: ThreadStart, name: String) throws(ActorError) -> pthread_t {
    let context = Unmanaged.passRetained(start).toOpaque()
    #if canImport(Darwin)
    var thread: pthread_t?
    let status = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadStart>.fromOpaque(raw).takeRetainedValue().body()
        return nil
    }, context)
    if status == 0, let thread { return thread }
    #else
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    if status == 0 { return thread }
    #endif
    Unmanaged<ThreadStart>.fromOpaque(context).release()
    throw .threadNotStarted(actor: name, errno: status)
}

/// Sleeps the calling thread (EINTR resumes the sleep).
func pause(milliseconds: Int) {
    var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// Names the calling thread as debuggers show it, where the system lets Swift do so: Glibc's
/// `pthread_setname_np` needs `_GNU_SOURCE`, which Swift's Glibc module does not define.
private func setThreadName(_ name: String) {
    #if canImport(Darwin)
    _ = pthread_setname_np(String(decoding: name.utf8.prefix(63), as: UTF8.self))
    #endif
}
