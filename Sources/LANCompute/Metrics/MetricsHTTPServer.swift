// A minimal HTTP/1.1 server for Prometheus scrapes: GET /metrics and /healthz, run by an actor.

import Foundation
import Logging
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the metrics HTTP server could not start.
public struct MetricsHTTPServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// What the owner of a ``MetricsHTTPServer`` tells its actor.
enum MetricsHTTPCommand: ActorMessage {
    /// Serve this text at /metrics from now on.
    case expose(String)

    var frames: [[UInt8]] {
        switch self {
        case .expose(let text): [Array(text.utf8)]
        }
    }

    init(frames: [[UInt8]]) throws {
        guard frames.count == 1 else { throw WireError("an exposition command has 1 frame, not \(frames.count)") }
        self = .expose(String(decoding: frames[0], as: UTF8.self))
    }
}

/// What the metrics HTTP actor reports: only, when ready, the port it listens on.
enum MetricsHTTPEvent: ActorMessage {
    case listening(port: Int)

    var frames: [[UInt8]] {
        switch self {
        case .listening(let port):
            var bytes: [UInt8] = []
            bytes.appendBigEndian(UInt16(port))
            return [bytes]
        }
    }

    init(frames: [[UInt8]]) throws {
        var reader = ByteReader(frames.first ?? [])
        self = .listening(port: Int(try reader.readUInt16("listening port")))
    }
}

/// Serves /metrics and /healthz over HTTP/1.1 from an actor: a small POSIX-socket server,
/// GET (and HEAD) only, `Connection: close`, no HTTP framework.
///
/// The thread that creates the server owns it (it holds the actor's pipe): that thread calls
/// ``update(exposition:)`` and ``stop()``. Requests are answered one at a time on the actor's
/// thread: a scrape is small, and a client that stalls is cut off after ``clientTimeout``.
public final class MetricsHTTPServer {
    /// The content type of the Prometheus text format.
    public static let expositionContentType = "text/plain; version=0.0.4; charset=utf-8"
    /// How long one client may take to send its request or read the answer.
    public static let clientTimeout: Duration = .seconds(2)

    /// The port listened on (the one chosen by the system when `port` was 0).
    public let boundPort: Int
    private let actor: ActorThread<MetricsHTTPCommand, MetricsHTTPEvent>

    /// Listens on `host` (an address or name; empty or `*` for every interface) and `port` (0: any
    /// free port); throws ``MetricsHTTPServerError`` when it cannot.
    public init(host: String, port: Int, logger: Logger = Logger(label: "lancompute.metrics.http"), context: Context = .shared) throws {
        guard (0...65535).contains(port) else {
            throw MetricsHTTPServerError(description: "port \(port) is out of range 0-65535")
        }
        actor = try ActorThread(name: "lancompute-metrics-http", context: context) { pipe in
            let descriptor = try Self.openListeningSocket(host: host, port: port)
            defer { close(descriptor) }
            try pipe.signalReady(.listening(port: try Self.localPort(of: descriptor)))
            var exposition = ""
            let loop = PollLoop()
            pipe.attach(to: loop) { command in
                switch command {
                case .expose(let text): exposition = text
                }
            }
            loop.register(fileDescriptor: descriptor) { _ in
                // An update sent before this request was made is answered with.
                while let input = try pipe.tryReceive() {
                    switch input {
                    case .command(.expose(let text)): exposition = text
                    case .terminate: return loop.stop()
                    }
                }
                let client = accept(descriptor, nil, nil)
                guard client >= 0 else { return }
                Self.setCloseOnExec(client)
                Self.answer(client, exposition: exposition)
                close(client)
            }
            do {
                try loop.run()
            } catch {
                logger.error("the metrics HTTP server stops: \(error)")
                throw error
            }
        }
        guard case .listening(let bound) = actor.readyReport else {
            throw MetricsHTTPServerError(description: "the metrics HTTP server did not report its port")
        }
        boundPort = bound
    }

    /// Replaces the text served at /metrics; the broker calls it once per interval.
    public func update(exposition text: String) {
        // Fails only once the server is stopped or its context shut down: nothing left to serve.
        try? actor.send(.expose(text))
    }

    /// Stops listening and waits for the server's thread to end; later calls do nothing.
    public func stop() {
        actor.stop()
    }

    // MARK: Serving

    private static func answer(_ client: Int32, exposition: String) {
        configureClient(client)
        guard let request = readRequestHead(client) else { return }
        writeAll(client, respond(to: request, exposition: exposition))
    }

    /// The whole response to a request head (its first line is what matters).
    static func respond(to requestHead: String, exposition: String) -> [UInt8] {
        let requestLine = requestHead.split(separator: "\r\n", maxSplits: 1).first ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/") else {
            return Self.response(status: "400 Bad Request", body: "bad request\n")
        }
        let method = parts[0]
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard method == "GET" || method == "HEAD" else {
            return Self.response(status: "405 Method Not Allowed", body: "only GET is supported\n",
                                 extraHeaders: ["Allow: GET, HEAD"])
        }
        let omitBody = method == "HEAD"
        switch path {
        case "/metrics":
            return Self.response(status: "200 OK", body: exposition, contentType: Self.expositionContentType,
                                 omitBody: omitBody)
        case "/healthz":
            return Self.response(status: "200 OK", body: "ok\n", omitBody: omitBody)
        default:
            return Self.response(status: "404 Not Found", body: "not found; try /metrics or /healthz\n", omitBody: omitBody)
        }
    }

    private static func response(
        status: String, body: String, contentType: String = "text/plain; charset=utf-8",
        extraHeaders: [String] = [], omitBody: Bool = false
    ) -> [UInt8] {
        let bodyBytes = Array(body.utf8)
        var head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bodyBytes.count)\r\n"
        for header in extraHeaders { head += header + "\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + (omitBody ? [] : bodyBytes)
    }

    // MARK: POSIX plumbing

    private static func openListeningSocket(host: String, port: Int) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var results: UnsafeMutablePointer<addrinfo>?
        let node: String? = (host.isEmpty || host == "*") ? nil : host
        let status = getaddrinfo(node, String(port), &hints, &results)
        guard status == 0, let first = results else {
            throw MetricsHTTPServerError(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(results) }
        var lastError = "no address for \(host)"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            let descriptor = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if descriptor < 0 {
                lastError = "socket: \(String(cString: strerror(errno)))"
                continue
            }
            setCloseOnExec(descriptor)
            var one: Int32 = 1
            setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0,
               listen(descriptor, 64) == 0 {
                return descriptor
            }
            lastError = "bind \(host):\(port): \(String(cString: strerror(errno)))"
            close(descriptor)
        }
        throw MetricsHTTPServerError(description: lastError)
    }

    private static func localPort(of descriptor: Int32) throws -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard status == 0 else {
            throw MetricsHTTPServerError(description: "getsockname: \(String(cString: strerror(errno)))")
        }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
        default:
            throw MetricsHTTPServerError(description: "unexpected address family \(storage.ss_family)")
        }
    }

    /// Keeps a descriptor out of processes the broker starts (exec stages): an inherited
    /// listening socket would hold the port after the broker exits.
    private static func setCloseOnExec(_ descriptor: Int32) {
        let flags = fcntl(descriptor, F_GETFD)
        if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
    }

    private static func configureClient(_ client: Int32) {
        let (seconds, attoseconds) = clientTimeout.components
        var timeout = timeval()
        timeout.tv_sec = .init(seconds)
        timeout.tv_usec = .init(attoseconds / 1_000_000_000_000)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #if canImport(Darwin)
        var one: Int32 = 1
        setsockopt(client, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Reads up to the blank line ending the request head (at most 16 KiB); nil if the client gave up.
    private static func readRequestHead(_ client: Int32) -> String? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while received.count < 16 * 1024 {
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            // Only the new bytes, and the three before them, can complete the terminator.
            let searchStart = max(0, received.count - (terminator.count - 1))
            received += buffer[..<count]
            if received[searchStart...].firstRange(of: terminator) != nil { break }
        }
        return received.isEmpty ? nil : String(decoding: received, as: UTF8.self)
    }

    private static func writeAll(_ client: Int32, _ bytes: [UInt8]) {
        #if canImport(Glibc)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(client, $0.baseAddress! + offset, $0.count - offset, flags) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
