// Checks the socket factory: profiles applied to real sockets, the exposure check, and that no other engine file makes sockets.

import Foundation
import Testing
import ZeroMQ
@testable import LANCompute

@Suite(.timeLimit(.minutes(1)))
struct SocketFactoryTests {
    @Test func onlyTheFactoryCreatesSockets() throws {
        let sources = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/LANCompute")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        var scanned = 0
        var offenders: [String] = []
        let creation = try Regex(#"(^|[^A-Za-z0-9_])Socket\("#)
        for case let url as URL in files where url.pathExtension == "swift" {
            scanned += 1
            if url.lastPathComponent == "SocketFactory.swift" { continue }
            let text = try String(contentsOf: url, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains(creation) {
                offenders.append("\(url.lastPathComponent):\(number + 1): \(line.trimmingSpaces)")
            }
        }
        #expect(scanned > 20, "the scan found no sources under \(sources.path)")
        #expect(offenders.isEmpty, "sockets made outside SocketFactory: \(offenders)")
    }

    @Test func aProfileSetsEveryOption() throws {
        let factory = SocketFactory(context: .shared)
        let router = try factory.socket(.dispatch(maxMessageSize: 4096))
        #expect(router.type == .router)
        #expect(try router.get(.sendHighWaterMark) == 0)
        #expect(try router.get(.receiveHighWaterMark) == 0)
        #expect(try router.get(.maxMessageSize) == 4096)
        #expect(try router.get(.linger) == .zero)
        #expect(try router.get(.handshakeInterval) == .seconds(2))

        let sink = try factory.socket(.sink)
        #expect(try sink.get(.linger) == .seconds(10))
        #expect(try sink.get(.sendTimeout) == .seconds(60))
        #expect(try sink.get(.immediate))

        let reader = try factory.socket(.sourceReader)
        #expect(try reader.get(.sendHighWaterMark) == 16)
        let pull = try factory.socket(.aggregator(maxMessageSize: 1 << 20))
        #expect(try pull.get(.receiveHighWaterMark) == 10_000)
        #expect(try pull.get(.maxMessageSize) == 1 << 20)
        #expect(try pull.get(.handshakeInterval) == .seconds(2))
        let source = try factory.socket(.source(maxMessageSize: 1 << 20))
        #expect(try source.get(.handshakeInterval) == .seconds(2))
        #expect(try source.get(.receiveHighWaterMark) == 1000)
        // The broker's end of its own reader's pipe is as short as the reader's end.
        let fromReader = try factory.socket(.source(maxMessageSize: 1 << 20, fromReader: true))
        #expect(try fromReader.get(.receiveHighWaterMark) == 16)

        // A subscription is a short topic: a larger message drops the subscriber before libzmq stores it.
        let events = try factory.socket(.eventsPublisher)
        #expect(try events.get(.maxMessageSize) == 4096)
        #expect(try events.get(.handshakeInterval) == .seconds(2))

        // A worker's connections give up on a stalled connect or unacknowledged outputs, so a
        // healed network is used again within seconds instead of after TCP's backoff.
        let outputs = try factory.socket(.workerOutputs)
        #expect(try outputs.get(.connectTimeout) == .seconds(1))
        #expect(try outputs.get(.tcpMaxRetransmitTimeout) == .seconds(2))
        let stage = try factory.socket(.workerStage)
        #expect(try stage.get(.connectTimeout) == .seconds(1))
        #expect(try stage.get(.tcpMaxRetransmitTimeout) == .zero)
    }

    @Test func everyProfileIsUnsecuredToday() {
        let profiles: [SocketProfile] = [
            .dispatch(maxMessageSize: 1), .eventsPublisher, .eventsSubscriber(), .aggregator(maxMessageSize: 1),
            .source(maxMessageSize: 1), .sourceReader, .workerStage, .workerOutputs, .slotResults, .slotWakeUp,
            .sink, .client, .feeder, .pairingHead, .pairingWorker,
        ]
        #expect(profiles.allSatisfy { $0.security == .none })
        #expect(Set(profiles.map(\.role)) == Set(SocketRole.allCases))
    }

    @Test func aNetworkBindIsRefusedWithoutInsecure() throws {
        let factory = SocketFactory(context: .shared)
        let socket = try factory.socket(.eventsPublisher)
        #expect {
            try factory.bind(socket, as: .eventsPublisher, to: "tcp://0.0.0.0:*")
        } throws: { error in
            guard case .exposed(let endpoint, .events) = error as? SocketBindError else { return false }
            return endpoint.isEveryInterface && "\(error)".hasPrefix("LC2005")
        }
        // Nothing was bound.
        #expect(try socket.lastEndpoint == "")
        try factory.bind(socket, as: .eventsPublisher, to: "tcp://127.0.0.1:*")
        #expect(try socket.lastEndpoint.hasPrefix("tcp://127.0.0.1:"))
    }

    @Test func insecureAllowsANetworkBind() throws {
        let factory = SocketFactory(context: .shared, insecure: true)
        let socket = try factory.socket(.eventsPublisher)
        try factory.bind(socket, as: .eventsPublisher, to: "tcp://0.0.0.0:*")
        #expect(try socket.lastEndpoint.hasPrefix("tcp://0.0.0.0:"))
    }

    @Test func aBadEndpointIsNamed() throws {
        let factory = SocketFactory(context: .shared)
        let socket = try factory.socket(.client)
        #expect {
            try factory.bind(socket, as: .client, to: "tcp://127.0.0.1")
        } throws: { error in
            guard case .invalid(let problem) = error as? SocketBindError else { return false }
            return problem.problem.contains("no port")
        }
    }
}
