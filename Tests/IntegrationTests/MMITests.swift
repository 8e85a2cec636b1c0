// MDP clients written with another ZeroMQ binding (pyzmq) ask the broker's MMI services and send items to stages.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized, .timeLimit(.minutes(3))) struct MMITests {
    /// An MDP/0.1 client: sends one request per command-line argument group and prints each reply as JSON.
    static let client = #"""
        import json, sys, time, zmq

        endpoint, mode = sys.argv[1], sys.argv[2]
        context = zmq.Context()
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)

        def ask(*frames, timeout=5000):
            socket.send_multipart([b"", b"MDPC01", *[f.encode() for f in frames]])
            if not socket.poll(timeout):
                return None
            return [f.decode("utf-8", "replace") for f in socket.recv_multipart()]

        result = {}
        if mode == "before-workers":
            result["service"] = ask("mmi.service", "upper")
            result["unknown-service"] = ask("mmi.service", "no-such-stage")
            result["unimplemented"] = ask("mmi.nothing")
            topology = ask("mmi.topology")
            result["topology-head"] = topology[:4] if topology else None
            if topology and len(topology) == 5:
                parsed = json.loads(topology[4])
                result["stages"] = [stage["name"] for stage in parsed["stages"]]
                result["bind"] = parsed["broker"]["bind"]
                result["heartbeat"] = parsed["broker"]["heartbeatInterval"]
                result["escaped-slash"] = "\\/" in topology[4]
        else:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                answer = ask("mmi.service", "upper", timeout=1000)
                if answer and answer[3] == "200":
                    break
                time.sleep(0.1)
            result["service"] = answer
            result["middle"] = ask("upper", "hello")
            result["final"] = ask("tail", "Mixed Case")
            result["two-frames"] = ask("upper", "a", "b")
        print(json.dumps(result))
        socket.close(0)
        context.term()
        """#

    @Test func mmiServicesAndStageRequestsFromAPlainMDPClient() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try Self.client.write(toFile: harness.path("client.py"), atomically: true, encoding: .utf8)
        // A pull source never ends by itself, so the broker keeps serving until it is told to stop.
        try """
            version: 1
            name: mmi
            source:
              pull: \(harness.ipc("source"))
            stages:
              - name: upper
                builtin: upper
              - name: tail
                builtin: identity
                from: upper
            sink:
              file: out.txt
            """.write(toFile: harness.path("mmi.yaml"), atomically: true, encoding: .utf8)
        let dispatch = harness.ipc("dispatch")
        let broker = try harness.lancompute("broker", [
            "broker", harness.path("mmi.yaml"), "--bind", dispatch, "--aggregator", harness.ipc("aggregator"),
            "--events", "none", "--json",
        ])
        try #require(try harness.waitUntilServing(dispatch), "\(harness.transcripts)")

        let before = try harness.python("client-before", [harness.path("client.py"), dispatch, "before-workers"])
        #expect(before.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        let first = try #require(try JSONSerialization.jsonObject(with: Data(before.standardOutput.utf8)) as? [String: Any])
        #expect(first["service"] as? [String] == ["", "MDPC01", "mmi.service", "404"])
        #expect(first["unknown-service"] as? [String] == ["", "MDPC01", "mmi.service", "404"])
        #expect(first["unimplemented"] as? [String] == ["", "MDPC01", "mmi.nothing", "501"])
        #expect(first["topology-head"] as? [String] == ["", "MDPC01", "mmi.topology", "200"])
        #expect(first["stages"] as? [String] == ["upper", "tail"])
        #expect(first["bind"] as? String == dispatch)
        // Durations travel as seconds, and endpoints without escaped slashes, for workers in any language.
        #expect(first["heartbeat"] as? Double == 0.25, "\(before.standardOutput)")
        #expect(first["escaped-slash"] as? Bool == false, "\(before.standardOutput)")

        try harness.lancompute("worker", ["worker", "--broker", dispatch])
        let after = try harness.python("client-after", [harness.path("client.py"), dispatch, "with-workers"])
        #expect(after.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        let second = try #require(try JSONSerialization.jsonObject(with: Data(after.standardOutput.utf8)) as? [String: Any])
        #expect(second["service"] as? [String] == ["", "MDPC01", "mmi.service", "200"])
        #expect(second["middle"] as? [String] == ["", "MDPC01", "upper", "HELLO"], "\(harness.transcripts)")
        // The final stage's LANCompute worker would normally PUSH to the aggregator; a client's item must come back instead.
        #expect(second["final"] as? [String] == ["", "MDPC01", "tail", "Mixed Case"], "\(harness.transcripts)")
        let twoFrames = second["two-frames"] as? [String]
        #expect(twoFrames?.prefix(4) == ["", "MDPC01", "upper", "error"])

        broker.signal(SIGTERM)
        #expect(broker.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        // Items sent by a client go back to it and never reach the sink.
        let sink = (try? String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)) ?? ""
        #expect(sink.isEmpty, "the sink holds a client's item: \(sink)")
    }
}
