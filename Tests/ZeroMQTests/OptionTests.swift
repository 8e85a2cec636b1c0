// Typed socket options: each one set and read back, and the ones whose effect can be seen, seen.

import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct OptionTests {
    @Test func integerOptionsRoundTrip() throws {
        let socket = try Socket(.dealer)
        let cases: [(SocketOption<Int>, Int)] = [
            (.sendHighWaterMark, 123), (.receiveHighWaterMark, 456), (.tcpKeepalive, 1),
            (.tcpKeepaliveCount, 5), (.tcpKeepaliveIdle, 60), (.tcpKeepaliveInterval, 10),
            (.sendBufferSize, 65536), (.receiveBufferSize, 131072), (.backlog, 50),
        ]
        for (option, value) in cases {
            try socket.set(option, value)
            #expect(try socket.get(option) == value, "\(option.name)")
        }
    }

    @Test func durationOptionsRoundTrip() throws {
        let socket = try Socket(.dealer)
        let cases: [(SocketOption<Duration?>, Duration?)] = [
            (.linger, .milliseconds(250)), (.linger, nil), (.linger, .zero),
            (.receiveTimeout, .seconds(3)), (.receiveTimeout, nil), (.sendTimeout, .milliseconds(7)),
            (.reconnectInterval, .milliseconds(250)), (.reconnectIntervalMax, .seconds(5)),
            (.heartbeatInterval, .milliseconds(500)), (.heartbeatTTL, .milliseconds(1500)),
            (.heartbeatTimeout, .milliseconds(1500)), (.handshakeInterval, .seconds(2)),
            (.connectTimeout, .milliseconds(800)), (.tcpMaxRetransmitTimeout, .seconds(4)),
        ]
        for (option, value) in cases {
            try socket.set(option, value)
            #expect(try socket.get(option) == value, "\(option.name)")
        }
    }

    @Test func booleanOptionsRoundTrip() throws {
        let socket = try Socket(.dealer)
        for option: SocketOption<Bool> in [.immediate, .ipv6, .conflate] {
            try socket.set(option, true)
            #expect(try socket.get(option), "\(option.name)")
            try socket.set(option, false)
            #expect(try socket.get(option) == false, "\(option.name)")
        }
        // Write-only flags are accepted by the socket types they apply to.
        let router = try Socket(.router)
        try router.set(.routerMandatory, true)
        try router.set(.routerHandover, true)
        try router.set(.probeRouter, true)
        let req = try Socket(.req)
        try req.set(.requestCorrelate, true)
        try req.set(.requestRelaxed, true)
        let xpub = try Socket(.xpub)
        try xpub.set(.xpubVerbose, true)
        try xpub.set(.xpubManual, true)
        try xpub.set(.xpubNoDrop, true)
        try xpub.set(.xpubWelcomeMessage, [UInt8](text: "welcome"))
        let sub = try Socket(.sub)
        try sub.set(.invertMatching, true)
        #expect(try sub.get(.invertMatching))
    }

    @Test func maxMessageSizeRoundTripsAndIsEnforced() throws {
        let pull = try makeSocket(.pull, timeout: .milliseconds(300))
        // Set before bind: a listener copies the socket's options when it is created.
        try pull.set(.maxMessageSize, 100)
        #expect(try pull.get(.maxMessageSize) == 100)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint
        let push = try makeSocket(.push)
        try push.set(.reconnectInterval, nil)
        try push.connect(endpoint)
        try push.send(patternBytes(50))
        #expect(try pull.receive() == patternBytes(50))
        // A larger message makes libzmq drop the connection: it never arrives.
        try push.send(patternBytes(101))
        #expect(try pull.tryReceiveMultipartWaiting() == nil)
    }

    @Test func byteAndTextOptionsRoundTrip() throws {
        let socket = try Socket(.dealer)
        try socket.set(.routingID, [0x01, 0xFE, 0x00, 0x42])
        #expect(try socket.get(.routingID) == [0x01, 0xFE, 0x00, 0x42])
        try socket.set(.zapDomain, "lancompute")
        #expect(try socket.get(.zapDomain) == "lancompute")
        #expect(try socket.get(.mechanism) == 0)  // NULL
        try socket.set(.plainUsername, "user")
        #expect(try socket.get(.mechanism) == 1)  // a PLAIN user name makes the socket a PLAIN client
        #expect(try socket.get(.plainUsername) == "user")
        try socket.set(.plainPassword, "secret")
        #expect(try socket.get(.plainPassword) == "secret")
        try socket.set(.socksProxy, "127.0.0.1:1080")
        #expect(try socket.get(.socksProxy) == "127.0.0.1:1080")
    }

    @Test func curveKeysRoundTripAsRawBytes() throws {
        let server = try CurveKeyPair.generate()
        let socket = try Socket(.router)
        try socket.makeCurveServer(server)
        #expect(try socket.get(.curveServer))
        #expect(try socket.get(.curvePublicKey) == server.publicKey)
        #expect(try socket.get(.curveSecretKey) == server.secretKey)
        #expect(try socket.get(.mechanism) == 2)

        let client = try CurveKeyPair.generate()
        let dealer = try Socket(.dealer)
        try dealer.makeCurveClient(serverKey: server.publicKey, keyPair: client)
        #expect(try dealer.get(.curveServerKey) == server.publicKey)
        #expect(try dealer.get(.curvePublicKey) == client.publicKey)
        // libzmq also takes the 40-character Z85 text form.
        try dealer.set(.curveServerKey, Array(client.publicKeyZ85.utf8))
        #expect(try dealer.get(.curveServerKey) == client.publicKey)
    }

    @Test func readOnlyOptionsDescribeTheSocket() throws {
        let (pull, endpoint) = try bindLoopback(.pull)
        #expect(try pull.get(.lastEndpoint) == endpoint)
        #expect(try pull.get(.socketType) == Int(SocketType.pull.rawValue))
        #expect(try pull.get(.fileDescriptor) >= 0)
        #expect(try pull.get(.events) & 1 == 0)  // ZMQ_POLLIN: nothing to read yet
        #expect(try pull.get(.receiveMore) == false)
        #expect(throws: ZMQError.self) { try pull.set(.lastEndpoint, "tcp://x:1") }
    }

    @Test func connectRoutingIDNamesThePeerOnARouter() throws {
        let name = uniqueInproc()
        let dealer = try makeSocket(.dealer)
        try dealer.bind(name)
        let router = try makeSocket(.router)
        try router.set(.connectRoutingID, [UInt8](text: "peer-1"))
        try router.connect(name)
        try router.send(multipart: [[UInt8](text: "peer-1"), [UInt8](text: "hi")])
        #expect(try dealer.receiveString() == "hi")
    }
}
