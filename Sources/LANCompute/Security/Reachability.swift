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
