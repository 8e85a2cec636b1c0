// The one parsed form of a ZeroMQ endpoint (tcp, ipc, inproc): parse errors, loopback, round-tripping text.

/// A ZeroMQ endpoint, parsed once: `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME`.
///
/// `description` gives back text that parses to the same value. For TCP, a host of `*` means
/// every interface and a port of nil means `*` (the system picks one); only a bind may use them.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// Whether the endpoint is going to be bound or connected: only a bind may use `*`.
    public enum Use: Sendable {
        case bind
        case connect
    }

    public enum Transport: String, Sendable, Hashable {
        case tcp, ipc, inproc
    }

    public enum Address: Sendable, Hashable {
        /// `host` without IPv6 brackets; `*` for every interface. `port` nil: `*`.
        case tcp(host: String, port: Int?)
        case ipc(path: String)
        case inproc(name: String)
    }

    public let address: Address

    public init(_ address: Address) { self.address = address }

    /// Parses `text`, checking it is usable for `use`; the error says what is wrong.
    public init(parsing text: String, use: Use = .connect) throws(EndpointError) {
        guard let schemeEnd = text.range(of: "://") else {
            throw EndpointError(text: text, problem: "'\(text)' is not an endpoint; write tcp://HOST:PORT, ipc://PATH or inproc://NAME")
        }
        let scheme = text[..<schemeEnd.lowerBound]
        let rest = String(text[schemeEnd.upperBound...])
        switch scheme {
        case "tcp":
            address = try Self.parseTCP(rest, use: use, text: text)
        case "ipc":
            guard !rest.isEmpty else { throw EndpointError(text: text, problem: "'\(text)' has no path after ipc://") }
            address = .ipc(path: rest)
        case "inproc":
            guard !rest.isEmpty else { throw EndpointError(text: text, problem: "'\(text)' has no name after inproc://") }
            address = .inproc(name: rest)
        default:
            throw EndpointError(text: text, problem: "'\(scheme)' is not a supported transport in '\(text)'; use tcp, ipc or inproc")
        }
    }

    /// Parses `HOST:PORT` without a scheme, as `--metrics-http` takes it: an empty host or `*` is
    /// every interface, port 0 lets the system choose.
    public init(hostAndPort text: String) throws(EndpointError) {
        guard let colon = text.lastIndex(of: ":") else {
            throw EndpointError(text: text, problem: "'\(text)' has no port; write HOST:PORT")
        }
        var host = String(text[..<colon])
        if host.isEmpty { host = "*" }
        let port = text[text.index(after: colon)...]
        if port == "0" || port == "*" {
            try self.init(parsing: "tcp://\(host):*", use: .bind)
        } else {
            try self.init(parsing: "tcp://\(host):\(port)", use: .bind)
        }
    }

    /// What a user may type for a machine: `head`, `head:6000`, `10.0.0.5`, `[fe80::1]:6000`, each
    /// `tcp://` with `defaultPort` when no port is given; anything with a scheme (`tcp://`, `ipc://`,
    /// `inproc://`) as it is. The text is not checked here: ``init(parsing:use:)`` does that.
    public static func expandingShorthand(_ text: String, defaultPort: Int) -> String {
        guard !text.contains("://"), !text.isEmpty else { return text }
        if text.hasPrefix("[") {
            // [v6] or [v6]:port
            if text.hasSuffix("]") { return "tcp://\(text):\(defaultPort)" }
            return "tcp://\(text)"
        }
        let colons = text.filter { $0 == ":" }.count
        switch colons {
        case 0: return "tcp://\(text):\(defaultPort)"
        case 1: return "tcp://\(text)"
        default: return "tcp://[\(text)]:\(defaultPort)"  // a bare IPv6 address
        }
    }

    /// Nil when `text` is a usable endpoint, else why it is not.
    public static func problem(with text: String, use: Use) -> String? {
        do {
            _ = try Endpoint(parsing: text, use: use)
            return nil
        } catch {
            return error.problem
        }
    }

    public var transport: Transport {
        switch address {
        case .tcp: .tcp
        case .ipc: .ipc
        case .inproc: .inproc
        }
    }

    /// The TCP host (IPv6 without brackets, `*` for every interface); nil for ipc and inproc.
    public var host: String? {
        if case .tcp(let host, _) = address { return host }
        return nil
    }

    /// The TCP port; nil for `*`, ipc and inproc.
    public var port: Int? {
        if case .tcp(_, let port) = address { return port }
        return nil
    }

    /// The ipc path or inproc name; nil for TCP.
    public var path: String? {
        switch address {
        case .tcp: nil
        case .ipc(let path): path
        case .inproc(let name): name
        }
    }

    /// Whether the host is `*`, `0.0.0.0` or `::` (every interface).
    public var isEveryInterface: Bool {
        guard let host else { return false }
        return host == "*" || host == "0.0.0.0" || host == "::"
    }

    /// Whether only this machine can reach the endpoint: ipc and inproc always, TCP on a loopback
    /// host (`localhost`, `127.x.x.x`, `::1`). Anything else is reachable from the network.
    public var isLoopback: Bool {
        switch address {
        case .ipc, .inproc: true
        case .tcp(let host, _): host == "localhost" || host.hasPrefix("127.") || host == "::1"
        }
    }

    /// An endpoint the broker advertised as bound on every interface, with `host` put in its place
    /// so that another machine can connect; any other endpoint unchanged.
    public func reachable(via host: String) -> Endpoint {
        guard isEveryInterface, case .tcp(_, let port) = address else { return self }
        return Endpoint(.tcp(host: host, port: port))
    }

    public var description: String {
        switch address {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "tcp://\(shownHost):\(port.map(String.init) ?? "*")"
        case .ipc(let path): return "ipc://\(path)"
        case .inproc(let name): return "inproc://\(name)"
        }
    }

    private static func parseTCP(_ rest: String, use: Use, text: String) throws(EndpointError) -> Address {
        func fail(_ problem: String) -> EndpointError { EndpointError(text: text, problem: problem) }
        guard let colon = rest.lastIndex(of: ":") else { throw fail("'\(text)' has no port; write tcp://HOST:PORT") }
        var host = String(rest[..<colon])
        let port = rest[rest.index(after: colon)...]
        if host.isEmpty { throw fail("'\(text)' has no host; write tcp://HOST:PORT (HOST may be * to bind every interface)") }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { throw fail("'\(text)' has an unclosed IPv6 address") }
            host = String(host.dropFirst().dropLast())
        }
        if host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "[" || $0 == "]" }) {
            throw fail("'\(text)' has an invalid host '\(host)'")
        }
        if port == "*" || host == "*" {
            if use == .connect { throw fail("'\(text)' uses *, which only a bind accepts; name the host and port to connect to") }
            if port == "*" { return .tcp(host: host, port: nil) }
        }
        guard let number = Int(port) else { throw fail("'\(text)' has an invalid port '\(port)'") }
        guard (1...65_535).contains(number) else { throw fail("port \(number) in '\(text)' is outside 1...65535") }
        return .tcp(host: host, port: number)
    }
}

/// Why a text is not a usable endpoint.
public struct EndpointError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text that was parsed.
    public let text: String
    /// What is wrong with it, in a sentence that quotes it.
    public let problem: String
    public var description: String { problem }
}
