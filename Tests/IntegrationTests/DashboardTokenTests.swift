// With keys, the broker's HTTP server wants a token, as a user finds it on the ready line.

import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(2)))
struct DashboardTokenTests {
    /// A keyed broker with a pull source (it runs until stopped) serving `--http` on a free port.
    private func startKeyedBroker(_ harness: ProcessHarness, host: String = "127.0.0.1", port: Int, extra: [String] = []) throws -> ChildProcess {
        let made = try ProcessHarness.run(["keygen", harness.path("broker")])
        try #require(made.status == 0, "\(made.standardError)")
        try "version: 1\nname: p\nsource:\n  pull: \(harness.ipc("s"))\nstages:\n  - name: a\n    builtin: upper\nsink:\n  stdout: true\n"
            .write(toFile: harness.path("p.yaml"), atomically: true, encoding: .utf8)
        return try harness.lancompute("broker", [
            "broker", harness.path("p.yaml"), "--keys", harness.path("broker"), "--bind", harness.ipc("d"),
            "--aggregator", harness.ipc("a"), "--events", "none", "--state", "none", "--http", "\(host):\(port)",
        ] + extra)
    }

    @Test func aKeyedBrokerPrintsATokenAndServesNothingButHealthWithoutIt() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let port = try DashboardBrowserTests.freePort()
        let broker = try startKeyedBroker(harness, port: port)
        let prefix = "dashboard http://127.0.0.1:\(port)/?token="
        try #require(broker.wait(until: { broker.standardError.contains(prefix) }, timeout: .seconds(30)), "\(broker.transcript)")
        let line = try #require(broker.standardError.split(separator: "\n").first { $0.contains(prefix) })
        let token = String(line[line.range(of: prefix)!.upperBound...].prefix { $0.isHexDigit })
        #expect(token.count == 32, "\(line)")
        #expect(line.contains("metrics http://127.0.0.1:\(port)/metrics (Authorization: Bearer"), "\(line)")

        #expect(DashboardBrowserTests.get("/healthz", port: port) == "ok\n")
        for path in ["/", "/api/state", "/metrics", "/events"] {
            #expect(DashboardBrowserTests.get(path, port: port) == nil, "\(path) without the token")
            #expect(DashboardBrowserTests.get(path + "?token=0123456789abcdef0123456789abcdef", port: port) == nil, "\(path) with another token")
        }
        #expect(DashboardBrowserTests.get("/?token=\(token)", port: port)?.contains("<title>") == true)
        #expect(DashboardBrowserTests.get("/api/state?token=\(token)", port: port)?.contains(#""origin":"broker""#) == true)
        let metrics = DashboardBrowserTests.get("/metrics", port: port, headers: ["Authorization: Bearer \(token)"])
        #expect(metrics?.contains("lancompute_") == true, "\(metrics ?? "no answer")")
    }

    /// A server that wants a token may bind beyond loopback (an open one needs --insecure: LC2005).
    @Test func aTokenFileIsUsedAndAShortTokenIsRefused() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let token = "kitchen-dashboard-2026"
        try "\(token)\n".write(toFile: harness.path("token"), atomically: true, encoding: .utf8)
        let port = try DashboardBrowserTests.freePort()
        let broker = try startKeyedBroker(harness, host: "0.0.0.0", port: port, extra: ["--http-token", harness.path("token")])
        try #require(broker.wait(until: { broker.standardError.contains("?token=\(token)") }, timeout: .seconds(30)), "\(broker.transcript)")
        #expect(DashboardBrowserTests.get("/api/state?token=\(token)", port: port) != nil)
        #expect(DashboardBrowserTests.get("/api/state", port: port) == nil)

        let short = try ProcessHarness.run(["broker", harness.path("p.yaml"), "--http", "127.0.0.1:0", "--http-token", "abc"], timeout: .seconds(30))
        #expect(short.status != 0)
        #expect(short.standardError.contains("--http-token: a token is at least 16 characters"), "\(short.standardError)")
    }

    @Test func runWithoutKeysPrintsAnOpenPage() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try (1...3).map(String.init).joined(separator: "\n").write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try "version: 1\nname: p\nsource:\n  file: in.txt\nstages:\n  - name: a\n    builtin: upper\nsink:\n  file: out.txt\n"
            .write(toFile: harness.path("p.yaml"), atomically: true, encoding: .utf8)
        let port = try DashboardBrowserTests.freePort()
        let result = try ProcessHarness.run(["run", harness.path("p.yaml"), "--http", "127.0.0.1:\(port)", "--state", "none"], timeout: .seconds(60))
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardError.contains("dashboard http://127.0.0.1:\(port)/, metrics http://127.0.0.1:\(port)/metrics\n"), "\(result.standardError)")
    }
}
