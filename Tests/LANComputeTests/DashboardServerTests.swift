// Checks DashboardServer live over 127.0.0.1: /metrics, /healthz, the event stream, errors, binding, stopping.

import Foundation
import Logging
import Testing
@testable import LANCompute

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(1))) struct DashboardServerTests {
    struct ClientError: Error, CustomStringConvertible {
        let description: String
    }

    struct Response {
        let status: Int
        let headers: [String: String]
        let body: String
    }

    /// Sends `request` raw over TCP to 127.0.0.1:`port` and reads until the server closes.
    static func exchange(port: Int, request: String) throws -> Response {
        let descriptor = socket(AF_INET, Int32(streamSocketType), 0)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw ClientError(description: "connect failed: errno \(errno)") }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<10_000 {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received += buffer[..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let headLines = parts[0].components(separatedBy: "\r\n")
        let statusParts = headLines[0].split(separator: " ")
        try #require(statusParts.count >= 2, "no status line in \(text.debugDescription)")
        var headers: [String: String] = [:]
        for line in headLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: Int(statusParts[1]) ?? 0, headers: headers, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    static func get(_ path: String, port: Int) throws -> Response {
        try exchange(port: port, request: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    }

    @Test func servesTheExpositionAndHealth() throws {
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        defer { server.stop() }
        #expect(server.boundPort > 0)
        let exposition = PipelineMetrics(pipeline: "p", stageNames: ["a"]).prometheusText()
        server.update(exposition: exposition)

        let metrics = try Self.get("/metrics", port: server.boundPort)
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.headers["content-length"] == String(exposition.utf8.count))
        #expect(metrics.body == exposition)

        let health = try Self.get("/healthz", port: server.boundPort)
        #expect(health.status == 200)
        #expect(health.body == "ok\n")
    }

    @Test func updatesReplaceTheExposition() throws {
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        defer { server.stop() }
        server.update(exposition: "first 1\n")
        #expect(try Self.get("/metrics", port: server.boundPort).body == "first 1\n")
        server.update(exposition: "second 2\n")
        #expect(try Self.get("/metrics?format=text", port: server.boundPort).body == "second 2\n")
    }

    @Test func unknownPathsMethodsAndGarbageAreRefused() throws {
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        defer { server.stop() }
        #expect(try Self.get("/nowhere", port: server.boundPort).status == 404)
        #expect(try Self.get("/metrics/extra", port: server.boundPort).status == 404)
        let post = try Self.exchange(port: server.boundPort, request: "POST /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        #expect(try Self.exchange(port: server.boundPort, request: "nonsense\r\n\r\n").status == 400)
        let head = try Self.exchange(port: server.boundPort, request: "HEAD /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        // The server still answers after all that.
        #expect(try Self.get("/healthz", port: server.boundPort).status == 200)
    }

    @Test func aPrometheusClientCanScrapeIt() throws {
        let metrics = PipelineMetrics(pipeline: "p", stageNames: ["a"])
        metrics.itemReceived(stage: "a")
        metrics.itemCompleted(stage: "a", latency: .milliseconds(20))
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        defer { server.stop() }
        server.update(exposition: metrics.prometheusText())
        let script = """
            import sys, urllib.request
            from prometheus_client.parser import text_string_to_metric_families
            with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5) as response:
                text = response.read().decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "lancompute_stage_items_total" and sample.labels.get("outcome") == "completed":
                        print(float(sample.value))
            """
        let result = try PythonPeer.run(script: script, arguments: [String(server.boundPort)])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1.0")
    }

    @Test func stopClosesTheListeningSocket() throws {
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        let port = server.boundPort
        #expect(try Self.get("/healthz", port: port).status == 200)
        server.stop()
        server.stop()
        #expect(throws: (any Error).self) { try Self.get("/healthz", port: port) }
    }

    @Test func aBusyPortIsReported() throws {
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        defer { server.stop() }
        #expect(throws: DashboardServerError.self) {
            _ = try DashboardServer(host: "127.0.0.1", port: server.boundPort, state: DashboardState(origin: "test"))
        }
    }

    @Test func addressesParseAsEndpoints() throws {
        #expect(try Endpoint(hostAndPort: "127.0.0.1:9464").address == .tcp(host: "127.0.0.1", port: 9464))
        #expect(try Endpoint(hostAndPort: "[::1]:9464").address == .tcp(host: "::1", port: 9464))
        #expect(try Endpoint(hostAndPort: ":0").address == .tcp(host: "*", port: nil))
        #expect(throws: EndpointError.self) { try Endpoint(hostAndPort: "localhost") }
        #expect(throws: EndpointError.self) { try Endpoint(hostAndPort: "host:99999") }
    }

    /// Connects to 127.0.0.1:`port`, sends `request`, and returns the descriptor for reading on.
    static func open(port: Int, request: String) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(streamSocketType), 0)
        try #require(descriptor >= 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw ClientError(description: "connect failed: errno \(errno)")
        }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        return descriptor
    }

    /// Reads from `descriptor` until the text received contains `marker` (or the server closes, or 5 s pass).
    static func read(_ descriptor: Int32, until marker: String, into received: inout String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<1_000 where !received.contains(marker) {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return false }
            received += String(decoding: buffer[..<count], as: UTF8.self)
        }
        return received.contains(marker)
    }

    @Test func theEventStreamStartsWithTheStateAndCarriesTheFeedLive() throws {
        let state = DashboardState(origin: "test")
        state.accept(topic: "metrics", json: #"{"type":"metrics","seq":1,"ts":1,"pipeline":"p","stages":[],"nodes":[]}"#)
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: state)
        defer { server.stop() }
        let descriptor = try Self.open(port: server.boundPort, request: "GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
        defer { close(descriptor) }
        var received = ""
        #expect(Self.read(descriptor, until: "event: state\ndata: {\"origin\":\"test\"", into: &received))
        #expect(received.lowercased().contains("content-type: text/event-stream"))
        #expect(received.contains(#""seq":1,"ts":1"#), "the state carries the snapshots seen before the page opened")
        // Only once the page's stream is registered can a live message reach it.
        for _ in 0..<200 where state.openStreams == 0 { Thread.sleep(forTimeInterval: 0.01) }
        state.accept(topic: "event.node.joined", json: #"{"type":"event.node.joined","seq":1,"ts":2,"id":"n1","host":"alpha","capabilities":{}}"#)
        #expect(Self.read(descriptor, until: "event: event\ndata: {\"topic\":\"event.node.joined\"", into: &received))
        state.accept(topic: "metrics", json: #"{"type":"metrics","seq":2,"ts":3,"pipeline":"p","stages":[],"nodes":[]}"#)
        #expect(Self.read(descriptor, until: #"event: metrics\#ndata: {"type":"metrics","seq":2"#, into: &received))
    }

    @Test func stopEndsOpenEventStreamsAndClosesTheServer() throws {
        let server = try DashboardServer(host: "127.0.0.1", port: 0, state: DashboardState(origin: "test"))
        let descriptor = try Self.open(port: server.boundPort, request: "GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
        defer { close(descriptor) }
        var received = ""
        #expect(Self.read(descriptor, until: "event: state", into: &received))
        let started = ContinuousClock.now
        server.stop()
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(!Self.read(descriptor, until: "never sent", into: &received), "the stream ends when the server stops")
        #expect(throws: (any Error).self) { try Self.get("/healthz", port: server.boundPort) }
    }

    @Test func onlyLoopbackIsServedWithoutInsecure() throws {
        let logger = Logger(label: "test")
        #expect(throws: RuntimeError.self) {
            _ = try DashboardServer.start(address: "0.0.0.0:0", insecure: false, state: DashboardState(origin: "t"), logger: logger)
        }
        do {
            _ = try DashboardServer.start(address: "0.0.0.0:0", insecure: false, state: DashboardState(origin: "t"), logger: logger)
        } catch {
            #expect(error.code == .unencryptedExposure)
        }
        do {
            _ = try DashboardServer.start(address: "9100", insecure: false, state: DashboardState(origin: "t"), logger: logger)
        } catch {
            #expect(error.code == .metricsHTTP)
        }
        let open = try DashboardServer.start(address: "0.0.0.0:0", insecure: true, state: DashboardState(origin: "t"), logger: logger)
        defer { open.stop() }
        #expect(open.endpoint == "0.0.0.0:\(open.boundPort)")
        #expect(try Self.get("/healthz", port: open.boundPort).status == 200)
        let loopback = try DashboardServer.start(address: "127.0.0.1:0", insecure: false, state: DashboardState(origin: "t"), logger: logger)
        defer { loopback.stop() }
        #expect(loopback.endpoint == "127.0.0.1:\(loopback.boundPort)")
    }
}

#if canImport(Glibc)
private let streamSocketType = SOCK_STREAM.rawValue
#else
private let streamSocketType = SOCK_STREAM
#endif
