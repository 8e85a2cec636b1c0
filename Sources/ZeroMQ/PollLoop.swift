// An event loop for one thread: sockets, file descriptors and deadline timers, each with a handler, over `Poller`.


/// Runs handlers on the thread that calls ``run()``: for sockets and file descriptors when they
/// are ready, and for timers when their deadline passes.
///
/// Like the ``Poller`` it is built on, a loop belongs to one thread; handlers may register,
/// cancel and ``stop()`` from inside the loop. Timers fire in deadline order, and timers with
/// the same deadline in the order they were scheduled. A handler that throws ends ``run()``
/// with its error.
///
/// ```swift
/// let loop = PollLoop()
/// loop.register(socket) { _ in try handle(socket.receiveMultipart()) }
/// loop.schedule(after: .seconds(1), repeating: .seconds(1)) { publishMetrics() }
/// try loop.run()
/// ```
public final class PollLoop {
    /// Names one registration (a socket, a file descriptor or a timer) for ``cancel(_:)``.
    public struct Token: Hashable, Sendable {
        fileprivate let value: Int
    }

    private enum Source {
        case socket(Socket)
        case fileDescriptor(Int32)
    }

    private struct Reader {
        let token: Token
        let source: Source
        var events: PollEvents
        let handler: (PollEvents) throws -> Void
    }

    private struct Timer {
        let token: Token
        var deadline: ContinuousClock.Instant
        let interval: Duration?
        /// Breaks ties between equal deadlines: the earlier scheduled fires first.
        var sequence: Int
        let handler: () throws -> Void
    }

    private var readers: [Reader] = []
    private var timers: [Timer] = []
    private var nextToken = 0
    private var nextSequence = 0
    /// The poller for `readers` as they were when it was built; nil after any change to the set.
    private var poller: Poller?
    private var polled: [Token] = []
    private var stopRequested = false

    public init() {}

    // MARK: Registering

    /// Calls `handler` with the ready events whenever `socket` is ready for any of `events`.
    @discardableResult
    public func register(_ socket: Socket, events: PollEvents = .in, handler: @escaping (PollEvents) throws -> Void) -> Token {
        add(Reader(token: makeToken(), source: .socket(socket), events: events, handler: handler))
    }

    /// Calls `handler` with the ready events whenever `fileDescriptor` (a pipe, a UDP or TCP socket)
    /// is ready for any of `events`. The loop never closes the descriptor.
    @discardableResult
    public func register(fileDescriptor: Int32, events: PollEvents = .in, handler: @escaping (PollEvents) throws -> Void) -> Token {
        add(Reader(token: makeToken(), source: .fileDescriptor(fileDescriptor), events: events, handler: handler))
    }

    /// Changes the events a socket or file descriptor is waited for; empty: not waited for until changed again.
    public func setEvents(_ events: PollEvents, for token: Token) {
        guard let index = readers.firstIndex(where: { $0.token == token }) else { return }
        readers[index].events = events
        if let poller, let position = polled.firstIndex(of: token) { poller.setEvents(events, at: position) }
    }

    /// Calls `handler` once `delay` has passed, then every `interval` if one is given.
    @discardableResult
    public func schedule(after delay: Duration, repeating interval: Duration? = nil, handler: @escaping () throws -> Void) -> Token {
        schedule(at: .now + delay, repeating: interval, handler: handler)
    }

    /// Calls `handler` once `deadline` has passed, then every `interval` if one is given.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, repeating interval: Duration? = nil, handler: @escaping () throws -> Void) -> Token {
        precondition(interval.map { $0 > .zero } ?? true, "a repeating timer needs a positive interval")
        let token = makeToken()
        timers.append(Timer(token: token, deadline: deadline, interval: interval, sequence: takeSequence(), handler: handler))
        return token
    }

    /// Removes a registration or timer; unknown or already removed tokens are ignored.
    public func cancel(_ token: Token) {
        if let index = readers.firstIndex(where: { $0.token == token }) {
            readers.remove(at: index)
            poller = nil
        }
        timers.removeAll { $0.token == token }
    }

    /// The number of sockets and file descriptors registered.
    public var registrationCount: Int { readers.count }

    /// The number of timers waiting to fire.
    public var timerCount: Int { timers.count }

    // MARK: Running

    /// Makes ``run()`` return once the handler running now (if any) has finished.
    public func stop() { stopRequested = true }

    /// Whether ``stop()`` was called since ``run()`` last started.
    public var isStopped: Bool { stopRequested }

    /// Waits and runs handlers until ``stop()`` is called or a handler throws.
    public func run() throws {
        stopRequested = false
        while !stopRequested { try runOnce(maxWait: nil) }
    }

    /// Waits at most `maxWait` (nil: until something is ready or a timer is due), then runs the
    /// handlers of what is ready and of every timer that is due.
    public func runOnce(maxWait: Duration?) throws {
        let poller = currentPoller()
        var wait = maxWait
        if let deadline = timers.map(\.deadline).min() {
            let untilTimer = max(.zero, ContinuousClock.now.duration(to: deadline))
            wait = min(wait ?? untilTimer, untilTimer)
        }
        if poller.count == 0 {
            // zmq_poll with no items would return at once; sleeping keeps a timers-only loop from spinning.
            if let wait { sleep(for: wait) } else { preconditionFailure("a poll loop with nothing registered would wait forever") }
        } else if try poller.poll(timeout: wait) > 0 {
            let tokens = polled
            for (position, token) in tokens.enumerated() {
                let ready = poller.readyEvents(at: position)
                if ready.isEmpty { continue }
                // A handler run before this one may have cancelled it.
                guard let reader = readers.first(where: { $0.token == token }) else { continue }
                try reader.handler(ready)
                if stopRequested { return }
            }
        }
        try fireDueTimers()
    }

    private func fireDueTimers() throws {
        let now = ContinuousClock.now
        // Only timers due now: one scheduled by a handler for "now" waits for the next round,
        // so a timer that keeps rescheduling itself cannot starve the sockets.
        let due = timers.filter { $0.deadline <= now }
            .sorted { ($0.deadline, $0.sequence) < ($1.deadline, $1.sequence) }
        for timer in due {
            guard let index = timers.firstIndex(where: { $0.token == timer.token }) else { continue }
            if let interval = timer.interval {
                // Fixed rate, but a timer far behind (a slow handler) skips the missed periods.
                var next = timer.deadline + interval
                if next <= now { next = now + interval }
                timers[index].deadline = next
                timers[index].sequence = takeSequence()
            } else {
                timers.remove(at: index)
            }
            try timer.handler()
            if stopRequested { return }
        }
    }

    // MARK: Plumbing

    private func add(_ reader: Reader) -> Token {
        readers.append(reader)
        poller = nil
        return reader.token
    }

    private func makeToken() -> Token {
        nextToken += 1
        return Token(value: nextToken)
    }

    private func takeSequence() -> Int {
        nextSequence += 1
        return nextSequence
    }

    private func currentPoller() -> Poller {
        if let poller { return poller }
        let poller = Poller()
        for reader in readers {
            switch reader.source {
            case .socket(let socket): poller.add(socket, events: reader.events)
            case .fileDescriptor(let descriptor): poller.add(fileDescriptor: descriptor, events: reader.events)
            }
        }
        polled = readers.map(\.token)
        self.poller = poller
        return poller
    }

    private func sleep(for duration: Duration) {
        let milliseconds = wholeMilliseconds(duration, roundingUp: true)
        pause(milliseconds: Int(milliseconds))
    }
}

@available(*, unavailable)
extension PollLoop: Sendable {}
