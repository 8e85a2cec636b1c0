// CURVE security: key pairs, a working encrypted connection, and a wrong server key that never connects.

import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct CurveTests {
    @Test func generatedKeyPairsAre32BytesAndDistinct() throws {
        let first = try CurveKeyPair.generate()
        let second = try CurveKeyPair.generate()
        #expect(first.publicKey.count == 32)
        #expect(first.secretKey.count == 32)
        #expect(first.publicKeyZ85.count == 40)
        #expect(first.secretKeyZ85.count == 40)
        #expect(first != second)
        #expect(try Z85.decode(first.publicKeyZ85) == first.publicKey)
        // Logging a key pair shows its public key only.
        #expect(!first.description.contains(first.secretKeyZ85))
    }

    @Test func publicKeyIsDerivedFromTheSecretKey() throws {
        let pair = try CurveKeyPair.generate()
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        #expect(try CurveKeyPair(secretKeyZ85: pair.secretKeyZ85) == pair)
    }

    @Test func knownKeyPairFromTheLibzmqTestSuite() throws {
        // The server key pair used by libzmq's own CURVE tests.
        let pair = try CurveKeyPair(secretKeyZ85: "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
        #expect(pair.publicKeyZ85 == "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
    }

    @Test(arguments: [0, 31, 33])
    func secretKeyOfTheWrongLengthIsRejected(count: Int) {
        let error = #expect(throws: ZMQError.self) { try CurveKeyPair(secretKey: [UInt8](repeating: 7, count: count)) }
        #expect(error?.code == .invalidArgument)
    }

    @Test func clientWithTheServerKeyExchangesMessages() throws {
        let serverKeys = try CurveKeyPair.generate()
        let router = try makeSocket(.router)
        try router.makeCurveServer(serverKeys)
        let serverMonitor = try router.monitor(events: SocketEvent.handshakeFailures.union([.handshakeSucceeded]))
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint

        let dealer = try makeSocket(.dealer)
        try dealer.makeCurveClient(serverKey: serverKeys.publicKey, keyPair: try CurveKeyPair.generate())
        try dealer.connect(endpoint)
        try dealer.send(multipart: [[UInt8](text: "secret"), [0, 1, 2]])
        let request = try router.receiveMultipart()
        #expect(request.count == 3)
        #expect(Array(request.dropFirst()) == [[UInt8](text: "secret"), [0, 1, 2]])
        try router.send(multipart: [request[0], [UInt8](text: "reply")])
        #expect(try dealer.receiveString() == "reply")
        #expect(try serverMonitor.wait(for: [.handshakeSucceeded], timeout: .seconds(5))?.event == .handshakeSucceeded)
        #expect(try dealer.get(.mechanism) == 2)
    }

    @Test func clientWithAWrongServerKeyNeverConnects() throws {
        let serverKeys = try CurveKeyPair.generate()
        let router = try makeSocket(.router)
        try router.makeCurveServer(serverKeys)
        let serverMonitor = try router.monitor()
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        try router.set(.receiveTimeout, .seconds(1))

        let dealer = try makeSocket(.dealer, timeout: .seconds(1))
        let wrongServerKey = try CurveKeyPair.generate().publicKey
        try dealer.makeCurveClient(serverKey: wrongServerKey, keyPair: try CurveKeyPair.generate())
        let clientMonitor = try dealer.monitor()
        try dealer.connect(endpoint)
        // The message waits in the client's queue: the handshake never completes, nothing reaches the server.
        #expect(try dealer.trySend([UInt8](text: "let me in")) == true)
        #expect(try router.tryReceiveMultipartWaiting() == nil)
        #expect(try dealer.tryReceiveMultipartWaiting() == nil)

        let failure = try serverMonitor.wait(for: SocketEvent.handshakeFailures, timeout: .seconds(5))
        #expect(failure != nil, "the server reported no handshake failure")
        #expect(failure?.endpoint.hasPrefix("tcp://127.0.0.1:") == true)
        // libzmq 4.3 reports a HELLO that does not decrypt as a cryptographic protocol error.
        #expect(failure?.event == .handshakeFailedProtocol)
        #expect(failure?.value == 0x1100_0001)  // ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
        // And no handshake ever succeeded on either side.
        while let event = try serverMonitor.tryReceive() { #expect(event.event != .handshakeSucceeded) }
        while let event = try clientMonitor.tryReceive() { #expect(event.event != .handshakeSucceeded) }
    }
}
