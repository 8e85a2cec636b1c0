// `lancompute feed EP [FILE]`: sends lines into a running pipeline in numbered, acknowledged batches (or, with --at-most-once, PUSHes them unconfirmed).

import ArgumentParser
import Foundation
import LANCompute
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct FeedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Send lines (from FILE or standard input) into a running pipeline whose source is 'pull'; every line acknowledged.",
        discussion: """
            Each line (bytes as they are, without its LF or CRLF ending) becomes one item. feed sends \
            numbered batches to the broker's dispatch endpoint (service lancompute.intake), keeps \
            --window of them unacknowledged at a time, sends a batch again with the same number when \
            its acknowledgement does not come within --resend-after (reconnecting when the connection \
            is silent), and backs off when the broker says it is busy. The broker accepts a resent \
            batch only once. feed exits 0 only when every line was acknowledged and none was \
            dead-lettered; otherwise it says how many lines were acknowledged and exits 1. When \
            nothing answers at ENDPOINT, or ENDPOINT is not a dispatch socket, it fails within \
            --connect-timeout. With --at-most-once, ENDPOINT is the pipeline's pull endpoint and \
            lines are PUSHed without any acknowledgement: lines still queued when feed exits or when \
            the connection resets are lost.
            """
    )

    @Argument(help: "The broker's dispatch endpoint, e.g. tcp://head:5555 (with --at-most-once: the pull source endpoint, e.g. tcp://head:5560); omitted with --discover.")
    var endpoint: String = ""

    @Argument(help: "A file of lines (default: standard input).")
    var file: String?

    @Option(help: "Most lines in one batch (a batch also holds at most 1 MiB of lines).")
    var batch: Int = 256

    @Option(help: "Batches sent ahead of their acknowledgement.")
    var window: Int = 16

    @Option(help: ArgumentHelp(
        "A name for this producer, so that a feed started again on the same input is recognised.",
        discussion: "Batches are numbered the same way each time (same input, same --batch), so the broker acknowledges those it accepted before instead of accepting them twice. Without it each feed is a new producer.",
        valueName: "NAME"))
    var producerID: String?

    @Option(help: "Seconds to wait for a batch's acknowledgement before sending it again.")
    var resendAfter: Double = 2

    @Option(help: "Seconds to wait for a first answer from the broker before failing.")
    var connectTimeout: Double = 5

    @Option(help: "Seconds without any acknowledgement (or, with --at-most-once, without taking a line) before failing.")
    var timeout: Double = 30

    @Flag(help: "PUSH the lines to a pull source endpoint without acknowledgement (lines may be lost).")
    var atMostOnce = false

    @OptionGroup var discovery: DiscoverOptions

    @OptionGroup var keys: ClientKeyOptions

    mutating func validate() throws {
        if !discovery.discover {
            // (With --discover the one positional argument is the file.)
            endpoint = Endpoint.expandingShorthand(endpoint, defaultPort: 5555)
            try checkEndpoint(endpoint, option: "ENDPOINT")
            checkResolves(endpoint)
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if window < 1 || window > Intake.maximumWindow {
            throw ValidationError("--window must be between 1 and \(Intake.maximumWindow)")
        }
        for (name, value) in [("--resend-after", resendAfter), ("--connect-timeout", connectTimeout), ("--timeout", timeout)] where value <= 0 {
            throw ValidationError("\(name) must be positive")
        }
    }

    func run() throws {
        if discovery.discover {
            var found = self
            (found.endpoint, found.file) = discovery.feedEndpoints(positional: endpoint.isEmpty ? nil : endpoint, file: file, atMostOnce: atMostOnce, curve: keys.curve)
            found.discovery.discover = false
            return try found.run()
        }
        guard let input = file.map({ fopen($0, "rb") }) ?? fdopen(0, "rb") else {
            fail("error LC2021: cannot open \(file ?? "standard input"): \(String(cString: strerror(errno)))")
        }
        defer { fclose(input) }
        let lines = LineReader(input)
        if atMostOnce {
            try pushAtMostOnce(lines)
        } else {
            try AcknowledgedFeed(command: self, lines: lines).run()
        }
    }

    /// The old way: PUSH to a pull source, no acknowledgement. It waits for the connection first, so
    /// that an endpoint where nothing listens, or one of another socket type, fails at once.
    private func pushAtMostOnce(_ lines: LineReader) throws {
        // A context of its own: dropping it at the end waits (up to the linger) for the queue to leave.
        let context = try Context()
        let push = try SocketFactory(context: context, curve: keys.curve).socket(.feeder)
        let monitor = try push.monitor(events: HandshakeWatch.events)
        do { try push.connect(endpoint) } catch { fail("error LC2022: cannot connect to \(endpoint): \(error.code.message)") }
        var watch = HandshakeWatch()
        let deadline = ContinuousClock.now + .milliseconds(Int(connectTimeout * 1000))
        while watch.state == .waiting, let event = try monitor.receive(timeout: max(.zero, deadline - .now)) { watch.observe(event.event) }
        switch watch.state {
        case .succeeded:
            break
        case .waiting:
            fail("error LC2025: nothing answered at \(endpoint) within \(formatSeconds(connectTimeout)): is the pipeline running, and is this its pull source endpoint?")
        default:
            if let failure = watch.securityFailure(endpoint: endpoint, secured: keys.brokerKey != nil) { fail(failure) }
            fail("error LC2026: \(endpoint) is not a pull source: the ZeroMQ handshake failed (its socket does not take a PUSH; without --at-most-once, give the broker's dispatch endpoint)")
        }
        monitor.stop()
        try push.set(.sendTimeout, .milliseconds(Int(timeout * 1000)))
        var sent = 0
        while let line = lines.next() {
            do {
                try push.send(line)
            } catch {
                fail("error LC2023: the pipeline at \(endpoint) took no more lines for \(formatSeconds(timeout)) after \(formatCount(sent)) lines: \(error.code.message)")
            }
            sent += 1
        }
        // Lingering gives the queue its chance to leave; it proves nothing (Docs/protocol.md, 16).
        try push.set(.linger, .milliseconds(Int(timeout * 1000)))
        push.close()
        FileHandle.standardError.write(Data("fed \(formatCount(sent)) lines to \(endpoint) at most once (not acknowledged: lines queued when the connection reset are lost)\n".utf8))
    }
}

/// What the socket monitor says of the ZeroMQ handshake with the endpoint.
///
/// A peer whose socket type cannot talk to ours (a DEALER at a PULL or an XPUB, a PUSH at a ROUTER)
/// closes the connection during the handshake: libzmq 4.3 then reports the connection and its
/// disconnection, without a handshake event, and does not reconnect. So a disconnection before any
/// handshake succeeded counts as a refused handshake, as an explicit handshake failure does.
struct HandshakeWatch {
    enum State { case waiting, succeeded, refused }
    static let events = SocketEvent.handshakeFailures.union([.handshakeSucceeded, .disconnected])
    private(set) var state = State.waiting
    /// The handshake failure that refused it, if one was reported (a ZAP refusal: the key).
    private(set) var failure: SocketEvent?

    /// The refusal as a security failure (LC2062, LC2063), when it was one.
    func securityFailure(endpoint: String, secured: Bool) -> RuntimeError? {
        switch failure {
        case .handshakeFailedAuth?:
            RuntimeError(.peerRefused, "the broker at \(endpoint) refused this key; add its public key to the broker's authorized_keys with role producer ('lancompute keys add')")
        case .handshakeFailedProtocol? where secured:
            RuntimeError(.brokerNotAuthenticated, "cannot authenticate the broker at \(endpoint): its key is not the one given with --broker-key, or it runs without keys")
        case .handshakeFailedProtocol?:
            RuntimeError(.brokerNotAuthenticated, "the broker at \(endpoint) has keys: pass --key and --broker-key")
        default:
            nil
        }
    }

    mutating func observe(_ event: SocketEvent) {
        if SocketEvent.handshakeFailures.contains(event) && state == .waiting { failure = event }
        switch event {
        case .handshakeSucceeded: state = .succeeded
        case .disconnected where state == .waiting: state = .refused
        case let failure where SocketEvent.handshakeFailures.contains(failure) && state == .waiting: state = .refused
        default: break
        }
    }
}

/// Reads lines as bytes: LF or CRLF endings removed, nothing else changed (NUL bytes included).
final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0

    init(_ file: UnsafeMutablePointer<FILE>) { self.file = file }
    deinit { free(buffer) }

    func next() -> [UInt8]? {
        let length = getline(&buffer, &capacity, file)
        guard length >= 0, let buffer else { return nil }
        var count = length
        if count > 0, buffer[count - 1] == 0x0A {
            count -= 1
            if count > 0, buffer[count - 1] == 0x0D { count -= 1 }
        }
        return Array(UnsafeRawBufferPointer(start: buffer, count: count))
    }
}

/// One run of acknowledged intake: numbered batches over a DEALER to the broker's dispatch ROUTER,
/// a window of unacknowledged ones, resends with the same numbers, reconnects. One thread.
final class AcknowledgedFeed {
    private struct Outstanding {
        var frames: [[UInt8]]
        /// Line number (from 1) of the batch's first line.
        var firstLine: Int
        var lines: Int
        /// When to send it (again): after a send, `resendAfter` later; after "busy", the backoff.
        var due: ContinuousClock.Instant
    }

    private let endpoint: String
    private let batchLines: Int
    private let window: Int
    private let resendAfter: Duration
    private let connectTimeout: Duration
    private let timeout: Duration
    private let lines: LineReader
    private let producer: IntakeProducerID
    private let showProgress = isatty(2) == 1
    private let curve: CurveSetup?

    private var socket: Socket
    private var monitor: SocketMonitor
    private var nextSequence: UInt64 = 1
    private var outstanding: [UInt64: Outstanding] = [:]
    private var inputDone = false
    private var linesRead = 0
    private var acknowledged = 0
    private var deadLetteredLines: [Int] = []
    /// Whether any valid intake reply has come: until then, failing fast is the right answer.
    private var answered = false
    private var handshake = HandshakeWatch()
    private var lastAck = ContinuousClock.now
    private var lastHeard = ContinuousClock.now
    private var lastConnect = ContinuousClock.now
    private var busyBackoff = Duration.milliseconds(50)

    init(command: FeedCommand, lines: LineReader) throws {
        endpoint = command.endpoint
        batchLines = command.batch
        window = command.window
        resendAfter = .milliseconds(Int(command.resendAfter * 1000))
        connectTimeout = .milliseconds(Int(command.connectTimeout * 1000))
        timeout = .milliseconds(Int(command.timeout * 1000))
        self.lines = lines
        producer = command.producerID.map(IntakeProducerID.init(named:)) ?? .random()
        curve = command.keys.curve
        (socket, monitor) = try Self.connect(command.endpoint, curve: curve)
    }

    private static func connect(_ endpoint: String, curve: CurveSetup?) throws -> (Socket, SocketMonitor) {
        let socket = try SocketFactory(curve: curve).socket(.client)
        let monitor = try socket.monitor(events: HandshakeWatch.events)
        do { try socket.connect(endpoint) } catch { fail("error LC2022: cannot connect to \(endpoint): \(error.code.message)") }
        return (socket, monitor)
    }

    func run() throws {
        let started = ContinuousClock.now
        var lastProgress = started
        while true {
            let now = ContinuousClock.now
            fillWindow(now: now)
            if inputDone && outstanding.isEmpty { break }
            sendDue(now: now)

            let poller = Poller()
            let socketIndex = poller.add(socket)
            let monitorIndex = poller.add(monitor.socket)
            _ = try poller.poll(timeout: .milliseconds(50))
            let afterPoll = ContinuousClock.now
            if poller.isReadable(monitorIndex) {
                while let event = try monitor.tryReceive() { handshake.observe(event.event) }
            }
            if poller.isReadable(socketIndex) {
                while let frames = try socket.tryReceiveMultipart() { handle(frames, now: afterPoll) }
            }

            if !answered {
                // Nothing has answered yet: fail within the connect timeout, saying why.
                if handshake.state == .refused {
                    if let failure = handshake.securityFailure(endpoint: endpoint, secured: curve != nil) { fail(failure) }
                    fail("error LC2026: \(endpoint) is not a LANCompute dispatch socket: the ZeroMQ handshake failed (a socket that does not talk to an MDP client, such as a pipeline's pull source or the events port); give the broker's dispatch endpoint (--bind, default tcp://127.0.0.1:5555), or pass --at-most-once to PUSH to a pull source")
                }
                if afterPoll - started >= connectTimeout {
                    fail("error LC2025: nothing answered at \(endpoint) within \(formatSeconds(connectTimeout)): is the broker running, and is this its dispatch endpoint (--bind, default tcp://127.0.0.1:5555)?")
                }
            } else if afterPoll - lastAck >= timeout {
                fail("error LC2027: the broker at \(endpoint) acknowledged nothing for \(formatSeconds(timeout)); \(acknowledgedSummary()); the others may or may not have been accepted")
            }
            // A connection silent while batches wait may be half-open (TCP does not always tell):
            // start a new one. Its batches are resent; the broker accepts each only once.
            if !outstanding.isEmpty, afterPoll - lastHeard >= resendAfter * 2, afterPoll - lastConnect >= resendAfter * 2 {
                reconnect(now: afterPoll)
            }
            if showProgress, afterPoll - lastProgress >= .milliseconds(200) {
                lastProgress = afterPoll
                FileHandle.standardError.write(Data("\rfeed: \(formatCount(linesRead)) lines read, \(formatCount(acknowledged)) acknowledged\u{1B}[K".utf8))
            }
        }
        if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        socket.close()
        guard deadLetteredLines.isEmpty else {
            let shown = deadLetteredLines.sorted().prefix(10).map(String.init).joined(separator: ", ")
            let more = deadLetteredLines.count > 10 ? ", ..." : ""
            fail("error LC2028: the broker acknowledged all \(formatCount(linesRead)) lines but dead-lettered \(formatCount(deadLetteredLines.count)) of them as too large (line \(shown)\(more)); they are in its dead-letter file")
        }
        FileHandle.standardError.write(Data("fed \(formatCount(linesRead)) lines to \(endpoint); the broker acknowledged all of them\n".utf8))
    }

    /// Reads the next batches while the window has room.
    private func fillWindow(now: ContinuousClock.Instant) {
        while !inputDone && outstanding.count < window {
            var items: [[UInt8]] = []
            var bytes = 0
            while items.count < batchLines && bytes < 1 << 20 {
                guard let line = lines.next() else {
                    inputDone = true
                    break
                }
                bytes += line.count
                items.append(line)
            }
            guard !items.isEmpty else { return }
            let sequence = nextSequence
            nextSequence += 1
            let frames = IntakeBatch(producer: producer, sequence: sequence, items: items).frames
            outstanding[sequence] = Outstanding(frames: frames, firstLine: linesRead + 1, lines: items.count, due: now)
            linesRead += items.count
        }
    }

    /// Sends every batch whose time has come, oldest first; a full send queue waits for the next round.
    private func sendDue(now: ContinuousClock.Instant) {
        for sequence in outstanding.keys.sorted() where outstanding[sequence]!.due <= now {
            guard (try? socket.trySend(multipart: outstanding[sequence]!.frames)) == true else { return }
            outstanding[sequence]!.due = now + resendAfter
        }
    }

    private func handle(_ frames: [[UInt8]], now: ContinuousClock.Instant) {
        guard let message = try? ClientMessage(frames: frames), message.service == Intake.service else { return }
        lastHeard = now
        let reply: IntakeReply
        do {
            reply = try IntakeReply(body: message.body)
        } catch {
            fail("error LC2026: \(endpoint) answered with a malformed intake reply (\(error)); is it a LANCompute broker of this version?")
        }
        switch reply {
        case .ack(let ack):
            guard ack.producer == producer else { return }
            answered = true
            lastAck = now
            busyBackoff = .milliseconds(50)
            guard let batch = outstanding.removeValue(forKey: ack.sequence) else { return }  // a second ack of a resend
            acknowledged += batch.lines
            deadLetteredLines += ack.deadLettered.map { batch.firstLine + $0 }
        case .error(let error):
            guard let refusal = error.refusal, error.producer == producer || error.producer == nil else {
                // Not one of the intake refusals: the broker does not offer intake at all.
                fail("error LC2026: \(endpoint) does not take acknowledged intake (it answered: \(error.message)); give the dispatch endpoint of a LANCompute broker of this version")
            }
            answered = true
            if refusal.isRetryable, let sequence = error.sequence, outstanding[sequence] != nil {
                // Busy: the same batch again after a pause that grows while the broker stays full.
                outstanding[sequence]!.due = now + busyBackoff
                busyBackoff = min(busyBackoff * 2, .seconds(1))
                lastAck = now  // the broker is alive and answering; the timeout is for silence
                return
            }
            if refusal.isRetryable { return }
            fail("error \(error.message); \(acknowledgedSummary())")
        }
    }

    private func reconnect(now: ContinuousClock.Instant) {
        socket.close()
        do {
            (socket, monitor) = try Self.connect(endpoint, curve: curve)
        } catch {
            fail("error LC2022: cannot connect to \(endpoint) again: \(error)")
        }
        lastConnect = now
        lastHeard = now
        handshake = HandshakeWatch()
        for sequence in outstanding.keys { outstanding[sequence]!.due = now }
    }

    /// "N of M lines read were acknowledged (every line before line K was)".
    private func acknowledgedSummary() -> String {
        var text = "\(formatCount(acknowledged)) of the \(formatCount(linesRead)) lines read were acknowledged"
        if let first = outstanding.values.map(\.firstLine).min() { text += " (every line before line \(first) was)" }
        return text
    }
}

/// `5 s`, `0.5 s`.
private func formatSeconds(_ value: Double) -> String {
    value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
}

private func formatSeconds(_ duration: Duration) -> String {
    formatSeconds(seconds(duration))
}
