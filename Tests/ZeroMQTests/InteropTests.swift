// Interop with an independent implementation: a pyzmq peer in a subprocess, over tcp loopback, both ways.
//
// Needs python3 with pyzmq (`pip install pyzmq`). Set LANCOMPUTE_SKIP_PYZMQ=1 to skip these tests
// on a machine without it; otherwise a missing pyzmq is a failure, not a silent skip.

import Foundation
import Testing
import ZeroMQ

@Suite(
    .timeLimit(.minutes(1)),
    .enabled(if: ProcessInfo.processInfo.environment["LANCOMPUTE_SKIP_PYZMQ"] == nil)
)
struct InteropTests {
    /// The messages pyzmq_peer.py sends and expects: keep in step with its `message()`.
    static func message(_ index: Int) -> [[UInt8]] {
        [[], [UInt8]("\(index)".utf8), (0...255).map { UInt8($0) }, [], [0x00, 0xFF, 0x00],
         [UInt8](repeating: UInt8(ascii: "x"), count: index * 1000)]
    }

    static let peerScript = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().appendingPathComponent("Peers/pyzmq_peer.py").path

    @Test func swiftDealerTalksToPythonRouterEcho() throws {
        let peer = try PythonPeer(["router-echo"])
        defer { peer.stop() }
        let endpoint = try #require(peer.readLine(), "the Python peer printed no endpoint: \(peer.errorOutput())")
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))

        let dealer = try makeSocket(.dealer, timeout: .seconds(10))
        try dealer.set(.routingID, [UInt8]("swift-dealer".utf8))
        try dealer.connect(endpoint)
        for index in 0..<20 {
            try dealer.send(multipart: Self.message(index))
            #expect(try dealer.receiveMultipart() == Self.message(index))
        }
        try dealer.send(multipart: [[UInt8]("quit".utf8)])
        #expect(try dealer.receiveMultipart() == [[UInt8]("bye".utf8)])
        #expect(peer.waitForExit() == 0, "\(peer.errorOutput())")
    }

    @Test func swiftCurveClientTalksToPythonCurveServer() throws {
        let peer = try PythonPeer(["curve-router-echo"])
        defer { peer.stop() }
        let endpoint = try #require(peer.readLine(), "the Python peer printed no endpoint: \(peer.errorOutput())")
        let serverKeyZ85 = try #require(peer.readLine(), "the Python peer printed no key")
        // The key pyzmq made travels as Z85 text and is decoded by the binding.
        let serverKey = try Z85.decode(serverKeyZ85)
        #expect(serverKey.count == 32)

        let dealer = try makeSocket(.dealer, timeout: .seconds(10))
        try dealer.makeCurveClient(serverKey: serverKey, keyPair: try CurveKeyPair.generate())
        let monitor = try dealer.monitor(events: [.handshakeSucceeded])
        try dealer.connect(endpoint)
        try dealer.send(multipart: Self.message(3))
        #expect(try dealer.receiveMultipart() == Self.message(3))
        #expect(try monitor.wait(for: [.handshakeSucceeded], timeout: .seconds(5)) != nil)
        try dealer.send(multipart: [[UInt8]("quit".utf8)])
        #expect(try dealer.receiveMultipart() == [[UInt8]("bye".utf8)])
        #expect(peer.waitForExit() == 0, "\(peer.errorOutput())")
    }

    @Test func pythonPushFeedsSwiftPull() throws {
        let (pull, endpoint) = try bindLoopback(.pull)
        try pull.set(.receiveTimeout, .seconds(10))
        let peer = try PythonPeer(["push", endpoint, "50"])
        defer { peer.stop() }
        for index in 0..<50 {
            #expect(try pull.receiveMultipart() == Self.message(index))
        }
        #expect(peer.waitForExit() == 0, "\(peer.errorOutput())")
    }

    @Test func pythonDealerChecksSwiftRouterEcho() throws {
        let (router, endpoint) = try bindLoopback(.router)
        try router.set(.receiveTimeout, .seconds(10))
        let peer = try PythonPeer(["dealer-check", endpoint, "20"])
        defer { peer.stop() }
        var echoed = 0
        while true {
            let frames = try router.receiveMultipart()
            #expect(frames.count >= 2)
            if Array(frames.dropFirst()) == [[UInt8]("done".utf8)] { break }
            #expect(Array(frames.dropFirst()) == Self.message(echoed))
            try router.send(multipart: frames)
            echoed += 1
            try #require(echoed <= 20)
        }
        #expect(echoed == 20)
        #expect(peer.waitForExit() == 0, "\(peer.errorOutput())")
        #expect(peer.readLine() == "ok")
    }
}

/// pyzmq_peer.py running in a child process; ``stop()`` always ends it.
final class PythonPeer {
    private let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private var buffered = Data()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", InteropTests.peerScript] + arguments
        process.standardOutput = output
        process.standardError = errors
        try process.run()
    }

    /// The next line the peer printed; nil at end of output (it exited).
    func readLine() -> String? {
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
                buffered.removeSubrange(buffered.startIndex...newline)
                return line
            }
            // The peer ends itself after 30 s, so this read cannot block for longer.
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty {
                if buffered.isEmpty { return nil }
                defer { buffered.removeAll() }
                return String(decoding: buffered, as: UTF8.self)
            }
            buffered.append(chunk)
        }
    }

    /// Waits (up to 20 s) for the peer to exit; its exit status, or nil if it had to be killed.
    func waitForExit() -> Int32? {
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { stop(); return nil }
        return process.terminationStatus
    }

    /// What the peer wrote to standard error (once it has exited).
    func errorOutput() -> String {
        if process.isRunning { return "" }
        return String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}
