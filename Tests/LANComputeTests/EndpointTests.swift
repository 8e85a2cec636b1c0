// Checks which ZeroMQ endpoints a topology may use for binding and for connecting.

import Testing
@testable import LANCompute

@Suite struct EndpointTests {
    @Test(arguments: ["tcp://127.0.0.1:5555", "tcp://*:5560", "tcp://*:*", "tcp://head.local:80", "tcp://[::1]:9000", "ipc:///tmp/x", "inproc://a"])
    func bindAccepts(endpoint: String) {
        #expect(Endpoint.problem(with: endpoint, use: .bind) == nil)
    }

    @Test(arguments: ["tcp://head:5560", "tcp://10.0.0.2:1", "ipc://relative", "inproc://name"])
    func connectAccepts(endpoint: String) {
        #expect(Endpoint.problem(with: endpoint, use: .connect) == nil)
    }

    @Test(arguments: ["", "localhost:5555", "udp://h:1", "tcp://host", "tcp://:5555", "tcp://h:0", "tcp://h:65536", "tcp://h:port", "ipc://", "inproc://", "tcp://[::1:5"])
    func bindRejects(endpoint: String) {
        #expect(Endpoint.problem(with: endpoint, use: .bind) != nil)
    }

    @Test(arguments: ["tcp://*:5560", "tcp://host:*"])
    func connectRejectsWildcards(endpoint: String) {
        #expect(Endpoint.problem(with: endpoint, use: .connect) != nil)
    }
}

@Suite struct EndpointValueTests {
    @Test(arguments: ["tcp://127.0.0.1:5555", "tcp://*:*", "tcp://head.local:80", "tcp://[::1]:9000", "ipc:///tmp/x", "inproc://a"])
    func descriptionRoundTrips(text: String) throws {
        let endpoint = try Endpoint(parsing: text, use: .bind)
        #expect(endpoint.description == text)
        #expect(try Endpoint(parsing: endpoint.description, use: .bind) == endpoint)
    }

    @Test func partsAreParsed() throws {
        let tcp = try Endpoint(parsing: "tcp://[::1]:9000")
        #expect(tcp.transport == .tcp)
        #expect(tcp.host == "::1")
        #expect(tcp.port == 9000)
        #expect(tcp.path == nil)
        let ipc = try Endpoint(parsing: "ipc:///tmp/x")
        #expect(ipc.transport == .ipc)
        #expect(ipc.path == "/tmp/x")
        #expect(ipc.host == nil)
        #expect(try Endpoint(parsing: "tcp://*:*", use: .bind).port == nil)
    }

    @Test func errorsNameWhatIsWrong() {
        #expect(throws: EndpointError.self) { try Endpoint(parsing: "tcp://h:port") }
        #expect(Endpoint.problem(with: "tcp://h:port", use: .connect)?.contains("invalid port 'port'") == true)
        #expect(Endpoint.problem(with: "udp://h:1", use: .connect)?.contains("'udp' is not a supported transport") == true)
        #expect(Endpoint.problem(with: "tcp://*:1", use: .connect)?.contains("only a bind") == true)
    }

    @Test(arguments: [
        ("tcp://127.0.0.1:1", true), ("tcp://127.9.9.9:1", true), ("tcp://localhost:1", true), ("tcp://[::1]:1", true),
        ("ipc:///tmp/x", true), ("inproc://x", true),
        ("tcp://0.0.0.0:1", false), ("tcp://*:1", false), ("tcp://10.0.0.2:1", false), ("tcp://head:1", false), ("tcp://[::]:1", false),
    ])
    func loopback(text: String, expected: Bool) throws {
        #expect(try Endpoint(parsing: text, use: .bind).isLoopback == expected)
    }

    @Test func anEveryInterfaceEndpointBecomesReachableViaTheBrokerHost() throws {
        let advertised = try Endpoint(parsing: "tcp://0.0.0.0:5557", use: .bind)
        #expect(advertised.reachable(via: "head").description == "tcp://head:5557")
        let named = try Endpoint(parsing: "tcp://10.0.0.2:5557")
        #expect(named.reachable(via: "head") == named)
    }
}

@Suite struct EndpointShorthandTests {
    @Test(arguments: [
        ("head", "tcp://head:5555"),
        ("head:6000", "tcp://head:6000"),
        ("10.0.0.5", "tcp://10.0.0.5:5555"),
        ("[fe80::1]", "tcp://[fe80::1]:5555"),
        ("[fe80::1]:6000", "tcp://[fe80::1]:6000"),
        ("fe80::1", "tcp://[fe80::1]:5555"),
        ("tcp://head:7000", "tcp://head:7000"),
        ("ipc:///tmp/d", "ipc:///tmp/d"),
    ])
    func whatAPersonTypesBecomesAnEndpoint(typed: String, expected: String) throws {
        let expanded = Endpoint.expandingShorthand(typed, defaultPort: 5555)
        #expect(expanded == expected)
        #expect(Endpoint.problem(with: expanded, use: .connect) == nil)
    }
}
