// Opens the dashboard of a running `lancompute run --http` in a real headless Chromium, as a user would.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Chromium binary, when this machine has one (CI installs Debian's `chromium`).
private let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite(.serialized, .timeLimit(.minutes(3)))
struct DashboardBrowserTests {
    @Test(.enabled(if: chromium != nil, "no chromium binary on this machine (apt-get install chromium): the browser test is skipped"))
    func thePageShowsTheLivePipelineAndFetchesNothingFromElsewhere() throws {
        let browser = try #require(chromium)
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        // Slow on purpose: 1,800 items through a 100 ms stage keep the run going for about 45 s, so the
        // page opens while it runs even when the browser starts slowly.
        try (1...1800).map(String.init).joined(separator: "\n").write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: dashboard-demo
            source:
              file: in.txt
            stages:
              - name: mark
                builtin: upper
              - name: hold
                builtin: sleep
                options: {duration: 100ms}
                replicas: 2
                from: mark
            sink:
              file: out.txt
            """.write(toFile: harness.path("pipeline.yaml"), atomically: true, encoding: .utf8)
        let port = try Self.freePort()
        let run = try harness.lancompute("run", [
            "run", harness.path("pipeline.yaml"), "--http", "127.0.0.1:\(port)", "--events", "tcp://127.0.0.1:*", "--quiet",
        ])
        // Live data: a snapshot in which the slow stage has completed something, and a node.
        let live = run.wait(until: {
            guard let state = Self.get("/api/state", port: port) else { return false }
            return state.contains(#""nodes":[{"#)
                && state.range(of: #""name":"hold","received":\d+,"completed":[1-9]"#, options: .regularExpression) != nil
        }, timeout: .seconds(60))
        try #require(live, "\(harness.transcripts)")

        // Every asset the page loads is served here, by relative path; the only absolute URL is
        // the SVG namespace name, which is never fetched.
        for path in ["/", "/dashboard.js", "/dashboard.css", "/api/state"] {
            let body = try #require(Self.get(path, port: port), "GET \(path)")
            let origins = body.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
                .matches(of: /https?:\/\//).count
            #expect(origins == 0, "\(path) names another origin")
        }

        // The browser is driven over the DevTools protocol (Scripts/test/browser_page.py), in real
        // time: it opens the page once and waits until the page says the run finished, then keeps the
        // DOM, a screenshot and every URL the page requested. (Chromium's own --dump-dom and
        // --screenshot wait for virtual time, which an open event stream holds still; a screenshot
        // taken that way hung now and then.) A proxy that refuses everything stands for the internet:
        // a request anywhere but 127.0.0.1 would fail, and would be in the list.
        let url = "http://127.0.0.1:\(port)/"
        let seqAtOpen = try #require(Self.lastSnapshotSeq(Self.get("/api/state", port: port) ?? ""))
        let screenshot = harness.path("dashboard.png")
        let requests = harness.path("requests.txt")
        let driver = ProcessHarness.packageRoot.appendingPathComponent("Scripts/test/browser_page.py").path
        let page = try harness.python("browser", [
            driver, "--chromium", browser, "--url", url, "--timeout", "60",
            "--until", #"document.getElementById("status").textContent.includes("stopped (finished)")"#,
            "--screenshot", screenshot, "--requests", requests,
            "--flag=--proxy-server=127.0.0.1:9", "--flag=--proxy-bypass-list=127.0.0.1", "--flag=--window-size=1400,1150",
        ])
        #expect(page.wait(timeout: .seconds(120)) == 0, "\(page.transcript)")
        #expect(run.wait(timeout: .seconds(30)) == 0, "\(run.transcript)")
        let requested = ((try? String(contentsOfFile: requests, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(requested.contains { $0.hasSuffix("/dashboard.js") } && requested.contains { $0.hasSuffix("/events") },
                "the page loaded its script and opened the stream: \(requested)")
        #expect(requested.allSatisfy { $0.hasPrefix("http://127.0.0.1:\(port)/") || $0.hasPrefix("data:") },
                "the page fetched nothing from elsewhere: \(requested)")
        let dom = page.standardOutput
        #expect(dom.contains(#"<tr data-stage="mark">"#), "the stages table lists mark: \(dom.prefix(2000))")
        #expect(dom.contains(#"<tr data-stage="hold">"#))
        #expect(dom.contains(#"id="stage-1""#) && dom.contains(#"class="edge""#), "the graph is drawn")
        #expect(dom.contains(#"<td class="completed">1,800</td>"#), "the last snapshot's counts: \(dom.prefix(4000))")
        #expect(dom.contains("<tr data-node="), "a node is listed")
        #expect(dom.contains("worker.ready") && dom.contains("pipeline.finished"), "the event stream is shown")
        // Only the live stream can have brought snapshots after the page loaded, and the broker's
        // last words: the page was updated in place, never reloaded.
        let status = try #require(dom.firstMatch(of: /id="status" class="stopped">stopped \(finished\) · snapshot (\d+)/), "\(dom.suffix(3000))")
        #expect(Int(status.1) ?? 0 > seqAtOpen, "snapshots arrived after the page opened")

        let attributes = try FileManager.default.attributesOfItem(atPath: screenshot)
        #expect((attributes[.size] as? Int ?? 0) > 10_000, "a screenshot with something in it")
        // Docs/dashboard.png is made by this command: LANCOMPUTE_DASHBOARD_SCREENSHOT=PATH keeps a copy.
        if let keep = ProcessInfo.processInfo.environment["LANCOMPUTE_DASHBOARD_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: screenshot, toPath: keep)
        }
    }

    /// The `seq` of the last snapshot in `/api/state`'s JSON.
    static func lastSnapshotSeq(_ state: String) -> Int? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(state.utf8)) as? [String: Any],
              let snapshots = object["snapshots"] as? [[String: Any]] else { return nil }
        return snapshots.last?["seq"] as? Int
    }

    /// A port nobody listens on now (the system's choice for port 0, released).
    static func freePort() throws -> Int {
        let socket = try LoopbackTCPSocket(listening: false)
        defer { socket.close() }
        return socket.port
    }

    /// The body of GET `path` on 127.0.0.1:`port` (with `headers`, each `Name: value`), or nil when nothing answers 200.
    static func get(_ path: String, port: Int, headers: [String] = []) -> String? {
        let descriptor = socket(AF_INET, Int32(streamSocketType), 0)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(headers.map { $0 + "\r\n" }.joined())Connection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<10_000 {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received += buffer[..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let split = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[split.upperBound...])
    }
}

#if canImport(Glibc)
private let streamSocketType = SOCK_STREAM.rawValue
#else
private let streamSocketType = SOCK_STREAM
#endif
