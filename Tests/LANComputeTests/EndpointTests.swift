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
