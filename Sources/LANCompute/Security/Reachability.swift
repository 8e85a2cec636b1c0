// Tells apart the ways a TCP address cannot be reached, for messages that say which mistake it is.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one plain TCP connection attempt to a host and port found.
///
/// ZeroMQ retries a connection forever without saying why it fails; this probe (a single
/// connect, closed at once, no data sent) names the reason for a person: a name that does not
/// resolve, nothing listening, no route, or silence (a firewall dropping packets, a host that is off).
public enum Reachability: Equatable, Sendable, CustomStringConvertible {
    /// Something accepted the connection.
    case accepting
    /// The name did not resolve (the resolver's message).
    case unresolved(String)
    /// The host answered that nothing listens on that port.
    case refused
    /// No route to the host or its network (the system's message).
    case unreachable(String)
    /// Nothing answered within the time given.
    case silent(Duration)

    /// Nil when `host` resolves, else the resolver's message; no connection is made.
    public static func resolutionProblem(host: String) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(streamSocketType)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        if status == 0 { freeaddrinfo(list) }
        return status == 0 ? nil : String(cString: gai_strerror(status))
    }

    /// Connects once to `host`:`port`, trying each address the name resolves to, for at most `timeout` in all.
    public static func probe(host: String, port: Int, timeout: Duration = .seconds(1)) -> Reachability {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(streamSocketType)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return .unresolved(String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        let deadline = ContinuousClock.now + timeout
        var outcome = Reachability.silent(timeout)
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            defer { entry = info.pointee.ai_next }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { break }
            let attempt = connectOnce(info.pointee, within: left)
            if attempt == .accepting { return .accepting }
            // Keep the most telling failure: refused and unreachable say more than silence.
            if case .silent = outcome { outcome = attempt }
        }
        return outcome
    }

    private static func connectOnce(_ info: addrinfo, within timeout: Duration) -> Reachability {
        let descriptor = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
        guard descriptor >= 0 else { return .unreachable(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        let flags = fcntl(descriptor, F_GETFL, 0)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        if connect(descriptor, info.ai_addr, info.ai_addrlen) == 0 { return .accepting }
        guard errno == EINPROGRESS else { return classify(errno, timeout: timeout) }
        var waiting = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        let milliseconds = Int32(max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        guard poll(&waiting, 1, milliseconds) == 1 else { return .silent(timeout) }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0 ? .accepting : classify(error, timeout: timeout)
    }

    private static func classify(_ code: Int32, timeout: Duration) -> Reachability {
        switch code {
        case ECONNREFUSED: .refused
        case ETIMEDOUT: .silent(timeout)
        default: .unreachable(String(cString: strerror(code)))
        }
    }

    public var description: String {
        switch self {
        case .accepting: "accepts connections"
        case .unresolved(let reason): "the name does not resolve (\(reason))"
        case .refused: "connection refused: nothing listens on that port (is the broker started, and on this port?)"
        case .unreachable(let reason): "no route (\(reason)): check the address and this machine's network"
        case .silent(let timeout): "no answer within \(timeout) (the host is off, or a firewall drops the packets)"
        }
    }
}

#if canImport(Glibc)
private let streamSocketType = SOCK_STREAM.rawValue
#else
private let streamSocketType = SOCK_STREAM
#endif

/// What a peer says in the first bytes of a ZeroMQ connection (ZMTP 3's greeting, RFC 23):
/// whether it speaks ZeroMQ at all, and whether it speaks CURVE.
///
/// The probe greets as a CURVE client: libzmq answers a peer of its own mechanism with its whole
/// greeting, and closes on one of another mechanism right after the 10-byte signature.
public enum ZMTPGreeting: Equatable, Sendable {
    /// It answered with a ZMTP greeting naming this mechanism (`CURVE`), or, nil, with the ZMTP
    /// signature alone before closing: a ZeroMQ socket of another mechanism (NULL, without keys).
    case zeroMQ(mechanism: String?)
    /// It answered with bytes that are no ZMTP greeting, or closed the connection at once.
    case notZeroMQ
    /// No connection, or no answer in time.
    case unknown

    /// Connects once to `endpoint` (TCP or ipc), sends a CURVE client's greeting and reads the peer's.
    public static func probe(_ endpoint: Endpoint, timeout: Duration = .seconds(1)) -> ZMTPGreeting {
        let descriptor: Int32
        switch endpoint.address {
        case .tcp(let host, let port?):
            descriptor = connectTCP(host: host, port: port)
        case .tcp:
            return .unknown
        case .ipc(let path):
            descriptor = connectUnix(path: path)
        case .inproc:
            return .unknown
        }
        guard descriptor >= 0 else { return .unknown }
        defer { close(descriptor) }
        var greeting = [UInt8](repeating: 0, count: 64)
        greeting[0] = 0xFF
        greeting[8] = 0x01
        greeting[9] = 0x7F
        greeting[10] = 3
        greeting[11] = 0
        for (offset, byte) in "CURVE".utf8.enumerated() { greeting[12 + offset] = byte }
        let micros = max(1000, timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000)
        var timeoutValue = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: suseconds_t(micros % 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
        // A ZMTP peer sends its 10-byte signature as soon as the connection is made.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        func read(upTo wanted: Int) -> Int {
            while received.count < wanted {
                let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, wanted - received.count, 0) }
                if count <= 0 { return count }
                received += buffer[..<count]
            }
            return received.count
        }
        let first = read(upTo: 10)
        if received.isEmpty { return first < 0 && errno == EAGAIN ? .unknown : .notZeroMQ }
        guard received.count == 10, received[0] == 0xFF, received[9] & 0x01 == 0x01 else { return .notZeroMQ }
        // Then the rest of a CURVE client's greeting: a peer of another mechanism closes here.
        guard greeting.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, Int32(noSignal)) }) == 64 else {
            return .zeroMQ(mechanism: nil)
        }
        guard read(upTo: 32) >= 32 else { return .zeroMQ(mechanism: nil) }
        guard received[10] >= 3 else { return .zeroMQ(mechanism: nil) }  // ZMTP 1 and 2 have no mechanisms
        let mechanism = String(decoding: received[12..<32].prefix { $0 != 0 }, as: UTF8.self)
        return .zeroMQ(mechanism: mechanism)
    }

    private static func connectTCP(host: String, port: Int) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(streamSocketType)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let info = list else { return -1 }
        defer { freeaddrinfo(list) }
        let descriptor = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard descriptor >= 0 else { return -1 }
        guard connect(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            close(descriptor)
            return -1
        }
        return descriptor
    }

    private static func connectUnix(path: String) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return -1 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let descriptor = socket(AF_UNIX, Int32(streamSocketType), 0)
        guard descriptor >= 0 else { return -1 }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            return -1
        }
        return descriptor
    }
}

#if canImport(Glibc)
private let noSignal = MSG_NOSIGNAL
#else
private let noSignal: Int32 = 0
#endif
