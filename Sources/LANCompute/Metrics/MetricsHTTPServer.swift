// A minimal HTTP/1.1 server for Prometheus scrapes: GET /metrics and /healthz on its own thread.

import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the metrics HTTP server could not start.
public struct MetricsHTTPServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Serves /metrics and /healthz over HTTP/1.1 on its own thread: a small POSIX-socket server,
/// GET (and HEAD) only, `Connection: close`, no HTTP framework. Thread-safe.
///
/// Requests are answered one at a time: a scrape is small, and a client that stalls is cut off
/// after ``clientTimeout``. The server thread keeps the server alive until ``stop()``.
public final class MetricsHTTPServer: Sendable {
    /// The content type of the Prometheus text format.
    public static let expositionContentType = "text/plain; version=0.0.4; charset=utf-8"
    /// How long one client may take to send its request or read the answer.
    public static let clientTimeout: Duration = .seconds(2)

    /// The port listened on (the one chosen by the system when `port` was 0).
    public let boundPort: Int
    private let listenDescriptor: Int32
    private let wakeDescriptors: (read: Int32, write: Int32)
    private let exposition = LockedValue("")
    private let running = LockedValue(true)
    private let finished = DispatchSemaphore(value: 0)
    private let logger: Logger

    /// Listens on `host` (an address or name; empty or `*` for every interface) and `port` (0: any free port).
    public init(host: String, port: Int, logger: Logger = Logger(label: "lancompute.metrics.http")) throws {
        self.logger = logger
        guard (0...65535).contains(port) else {
            throw MetricsHTTPServerError(description: "port \(port) is out of range 0-65535")
        }
        let descriptor = try Self.openListeningSocket(host: host, port: port)
        do {
            boundPort = try Self.localPort(of: descriptor)
            var pipeDescriptors: [Int32] = [0, 0]
            guard pipe(&pipeDescriptors) == 0 else {
                throw MetricsHTTPServerError(description: "pipe() failed: \(String(cString: strerror(errno)))")
            }
            wakeDescriptors = (pipeDescriptors[0], pipeDescriptors[1])
            Self.setCloseOnExec(pipeDescriptors[0])
            Self.setCloseOnExec(pipeDescriptors[1])
        } catch {
            close(descriptor)
            throw error
        }
        listenDescriptor = descriptor
        let thread = Thread { [self] in serve() }
        thread.name = "lancompute-metrics-http"
        thread.start()
    }

    /// Parses `HOST:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `:9464`) as given to `--metrics-http`.
    public static func parse(address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// Replaces the text served at /metrics; the broker calls it once per interval.
    public func update(exposition text: String) {
        exposition.withLock { $0 = text }
    }

    /// Stops listening and waits for the server thread to finish; later calls do nothing.
    public func stop() {
        let wasRunning = running.withLock { running in
            defer { running = false }
            return running
        }
        guard wasRunning else { return }
        var byte: UInt8 = 1
        _ = write(wakeDescriptors.write, &byte, 1)
        if finished.wait(timeout: .now() + .seconds(5)) == .timedOut {
            logger.warning("the metrics HTTP server thread did not stop within 5 s")
            return
        }
        close(wakeDescriptors.read)
        close(wakeDescriptors.write)
    }

    // MARK: Serving

    private func serve() {
        defer {
            close(listenDescriptor)
            finished.signal()
        }
        var descriptors = [
            pollfd(fd: listenDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeDescriptors.read, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("poll failed; the metrics HTTP server stops", metadata: ["errno": "\(errno)"])
                return
            }
            if descriptors[1].revents != 0 { return }
            if descriptors[0].revents & Int16(POLLIN) != 0 {
                let client = accept(listenDescriptor, nil, nil)
                if client >= 0 {
                    Self.setCloseOnExec(client)
                    answer(client)
                    close(client)
                }
            }
        }
    }

    private func answer(_ client: Int32) {
        Self.configureClient(client)
        guard let request = Self.readRequestHead(client) else { return }
        let response = respond(to: request)
        Self.writeAll(client, response)
    }

    /// The whole response to a request head (its first line is what matters).
    func respond(to requestHead: String) -> [UInt8] {
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
            return Self.response(status: "200 OK", body: exposition.current, contentType: Self.expositionContentType,
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
