// The network mistakes a user makes pointing a worker at a broker, each told apart, as typed.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3)))
struct NetworkMistakeTests {
    private static let topology = "version: 1\nname: p\nsource:\n  file: in.txt\nstages:\n  - name: a\n    builtin: upper\nsink:\n  file: out.txt\n"

    @Test func aNameThatDoesNotResolveEndsTheWorkerAtOnce() throws {
        let result = try ProcessHarness.run(["worker", "--broker", "no-such-head.invalid", "--insecure"], timeout: .seconds(30))
        #expect(result.status == 1)
        #expect(result.standardError.contains("LC2080: cannot resolve 'no-such-head.invalid' of tcp://no-such-head.invalid:5555"), "\(result.standardError)")
        #expect(result.standardError.split(separator: "\n").count == 1, "\(result.standardError)")
    }

    @Test(arguments: [["events", "no-such-head.invalid"], ["nodes", "no-such-head.invalid:6000"], ["top", "no-such-head.invalid"]])
    func otherCommandsSayTheNameDoesNotResolve(arguments: [String]) throws {
        let result = try ProcessHarness.run(arguments, timeout: .seconds(30))
        #expect(result.status == 1)
        #expect(result.standardError.contains("LC2080: cannot resolve 'no-such-head.invalid'"), "\(result.standardError)")
    }

    @Test func aPortNobodyListensOnIsSaidToRefuse() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let port = try DashboardBrowserTests.freePort()
        let worker = try harness.lancompute("worker", ["worker", "--broker", "127.0.0.1:\(port)", "--insecure"])
        #expect(worker.wait(until: { worker.standardError.contains("connection refused: nothing listens on that port") }, timeout: .seconds(30)),
                "\(worker.transcript)")
        #expect(worker.standardError.contains("no answer from the broker at tcp://127.0.0.1:\(port): connection refused"), "\(worker.transcript)")
    }

    @Test func theEventsPortGivenForTheDispatchOneIsNamed() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try (1...3).map(String.init).joined(separator: "\n").write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try Self.topology.write(toFile: harness.path("p.yaml"), atomically: true, encoding: .utf8)
        let dispatch = try DashboardBrowserTests.freePort()
        let events = try DashboardBrowserTests.freePort()
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("p.yaml"), "--bind", "tcp://127.0.0.1:\(dispatch)", "--events", "tcp://127.0.0.1:\(events)",
            "--aggregator", harness.ipc("a"), "--state", "none",
        ])
        try #require(broker.wait(until: { broker.standardError.contains("broker ready") }, timeout: .seconds(20)), "\(broker.transcript)")
        let wrong = try harness.lancompute("wrong", ["worker", "--broker", "127.0.0.1:\(events)", "--insecure"])
        #expect(wrong.wait(timeout: .seconds(60)) == 1, "\(wrong.transcript)")
        #expect(wrong.standardError.contains("LC2082: tcp://127.0.0.1:\(events) is a ZeroMQ socket that takes no workers"), "\(wrong.transcript)")
        // The same broker, by HOST:PORT without a scheme: the run finishes.
        let right = try harness.lancompute("right", ["worker", "--broker", "127.0.0.1:\(dispatch)", "--insecure"])
        #expect(broker.wait(timeout: .seconds(60)) == 0, "\(broker.transcript)\n\(right.transcript)")
        let out = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(out.split(separator: "\n").sorted() == ["1", "2", "3"], "\(out)")
    }

    @Test func aPortThatSpeaksNoZeroMQIsNamed() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        // A listener that takes each connection and closes it, as an unrelated service might.
        let listener = try LoopbackTCPSocket(listening: true)
        let port = listener.port
        defer { listener.close() }
        let closer = Thread {
            for _ in 0..<200 {
                let connection = accept(listener.descriptor, nil, nil)
                if connection < 0 { return }
                close(connection)
            }
        }
        closer.start()
        let worker = try harness.lancompute("worker", ["worker", "--broker", "tcp://127.0.0.1:\(port)", "--insecure"])
        #expect(worker.wait(timeout: .seconds(60)) == 1, "\(worker.transcript)")
        #expect(worker.standardError.contains("LC2081: tcp://127.0.0.1:\(port) accepts connections but does not speak ZeroMQ"), "\(worker.transcript)")
        shutdown(listener.descriptor, Int32(SHUT_RDWR))
    }

    @Test func keysOnOneSideOnlyAreSaidSo() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        for name in ["broker", "worker"] {
            let made = try ProcessHarness.run(["keygen", harness.path(name)])
            try #require(made.status == 0, "\(made.standardError)")
        }
        try (1...3).map(String.init).joined(separator: "\n").write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try Self.topology.write(toFile: harness.path("p.yaml"), atomically: true, encoding: .utf8)
        // A keyed broker, and a worker without keys.
        let keyed = try harness.lancompute("keyed", [
            "broker", harness.path("p.yaml"), "--keys", harness.path("broker"), "--bind", harness.ipc("k"),
            "--aggregator", harness.ipc("ka"), "--events", "none", "--state", "none",
        ])
        try #require(keyed.wait(until: { keyed.standardError.contains("broker ready") }, timeout: .seconds(20)), "\(keyed.transcript)")
        let plain = try harness.lancompute("plain", ["worker", "--broker", harness.ipc("k")])
        #expect(plain.wait(timeout: .seconds(30)) == 1, "\(plain.transcript)")
        #expect(plain.standardError.contains("LC2073: the broker at \(harness.ipc("k")) has keys and this command has none"), "\(plain.transcript)")
        // A broker without keys, and a worker with them.
        let open = try harness.lancompute("open", [
            "broker", harness.path("p.yaml"), "--bind", harness.ipc("o"), "--aggregator", harness.ipc("oa"), "--events", "none", "--state", "none",
        ])
        try #require(open.wait(until: { open.standardError.contains("broker ready") }, timeout: .seconds(20)), "\(open.transcript)")
        let keyedWorker = try harness.lancompute("keyed-worker", [
            "worker", "--broker", harness.ipc("o"), "--key", harness.path("worker/secret.key"), "--broker-key", harness.path("broker/public.key"),
        ])
        #expect(keyedWorker.wait(timeout: .seconds(30)) == 1, "\(keyedWorker.transcript)")
        // (Whether libzmq reports this as a mechanism mismatch or as failed handshakes, it is named.)
        #expect(keyedWorker.standardError.contains("LC2073") && keyedWorker.standardError.contains("without keys"), "\(keyedWorker.transcript)")
    }
}

