// The messaging patterns LANCompute uses, end to end through the binding.

import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct PatternTests {
    @Test func everySocketTypeCanBeCreatedAndClosed() throws {
        for type in SocketType.allCases {
            let socket = try Socket(type)
            #expect(socket.type == type)
            #expect(try socket.get(.socketType) == Int(type.rawValue))
            #expect(try socket.get(.linger) == .zero)
            socket.close()
            #expect(socket.isClosed)
        }
    }

    @Test func requestReplyOverTCP() throws {
        let (rep, endpoint) = try bindLoopback(.rep)
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(!endpoint.hasSuffix(":*"))
        let req = try makeSocket(.req)
        try req.connect(endpoint)
        for round in 0..<3 {
            try req.send("question \(round)")
            #expect(try rep.receiveString() == "question \(round)")
            try rep.send(multipart: [[UInt8](text: "answer"), [UInt8](text: "\(round)")])
            #expect(try req.receiveMultipart() == [[UInt8](text: "answer"), [UInt8](text: "\(round)")])
        }
    }

    @Test func pushPullFansInFromSeveralPushers() throws {
        let (pull, endpoint) = try bindLoopback(.pull)
        let pushers = try (0..<3).map { _ in try makeSocket(.push) }
        for push in pushers { try push.connect(endpoint) }
        for (index, push) in pushers.enumerated() {
            for item in 0..<10 { try push.send(multipart: [[UInt8(index)], [UInt8(item)]]) }
        }
        var perPusher = [Int: [UInt8]]()
        for _ in 0..<30 {
            let frames = try pull.receiveMultipart()
            #expect(frames.count == 2)
            perPusher[Int(frames[0][0]), default: []].append(frames[1][0])
        }
        // Order is kept per connection, whatever the interleaving between them.
        for index in 0..<3 { #expect(perPusher[index] == Array(0..<10)) }
    }

    @Test func pushDistributesRoundRobinOverPullers() throws {
        let push = try makeSocket(.push)
        let name = uniqueInproc()
        try push.bind(name)
        let pullers = try (0..<2).map { _ in try makeSocket(.pull) }
        for pull in pullers { try pull.connect(name) }
        for item in 0..<10 { try push.send([UInt8(item)]) }
        var counts = [0, 0]
        for (index, pull) in pullers.enumerated() {
            while let frame = try pull.tryReceive() {
                #expect(frame.count == 1)
                counts[index] += 1
            }
        }
        #expect(counts[0] + counts[1] == 10)
        #expect(counts[0] == 5 && counts[1] == 5)
    }

    @Test func publishSubscribeFiltersByPrefix() throws {
        let (pub, endpoint) = try bindLoopback(.pub)
        let sub = try makeSocket(.sub, timeout: .milliseconds(20))
        try sub.subscribe("weather.")
        try sub.connect(endpoint)
        // Subscriptions travel to the publisher asynchronously: publish until one gets through.
        var synced = false
        for _ in 0..<250 where !synced {
            try pub.send("weather.sync")
            synced = (try sub.tryReceiveMultipartWaiting()) != nil
        }
        #expect(synced)
        while try sub.tryReceive() != nil {}

        try sub.set(.receiveTimeout, .seconds(5))
        for topic in ["sport.1", "weather.2", "sport.3", "weatherman", "weather.4", "weather.end"] {
            try pub.send(multipart: [[UInt8](text: topic), [UInt8](text: "body")])
        }
        var received = [String]()
        while received.last != "weather.end" {
            let frames = try sub.receiveMultipart()
            #expect(frames.count == 2)
            received.append(String(decoding: frames[0], as: UTF8.self))
        }
        #expect(received == ["weather.2", "weather.4", "weather.end"])

        try sub.unsubscribe("weather.")
        try sub.subscribe(bytes: [0xFF])
        // After the unsubscription reaches the publisher, only the binary topic gets through.
        var gotBinary = false
        for _ in 0..<250 where !gotBinary {
            try pub.send("weather.late")
            try pub.send([0xFF, 0x01])
            try sub.set(.receiveTimeout, .milliseconds(20))
            while let frame = try sub.tryReceiveMultipartWaiting() {
                if frame == [[0xFF, 0x01]] { gotBinary = true; break }
            }
        }
        #expect(gotBinary)
    }

    @Test func xpubSeesSubscriptionsAndXsubCanSendThem() throws {
        let xpub = try makeSocket(.xpub)
        let name = uniqueInproc()
        try xpub.bind(name)
        let sub = try makeSocket(.sub)
        try sub.connect(name)
        try sub.subscribe("jobs.")
        let frame = try xpub.receive()
        #expect(Subscription(frame: frame) == Subscription(isSubscribe: true, topic: [UInt8](text: "jobs.")))
        #expect(Subscription(frame: frame)?.topicString == "jobs.")

        let xsub = try makeSocket(.xsub)
        try xsub.connect(name)
        try xsub.send(Subscription(isSubscribe: true, topic: [UInt8](text: "x")).frame)
        #expect(Subscription(frame: try xpub.receive())?.topic == [UInt8](text: "x"))
        #expect(Subscription(frame: [UInt8]()) == nil)
        #expect(Subscription(frame: [7, 1]) == nil)
        #expect(Subscription(isSubscribe: false, topic: [9]).frame == [0, 9])
    }

    @Test func routerAndDealerAddressPeersByRoutingID() throws {
        let (router, endpoint) = try bindLoopback(.router)
        try router.set(.routerMandatory, true)
        let dealers = try ["worker-a", "worker-b"].map { id in
            let dealer = try makeSocket(.dealer)
            try dealer.set(.routingID, [UInt8](text: id))
            #expect(try dealer.get(.routingID) == [UInt8](text: id))
            try dealer.connect(endpoint)
            return dealer
        }
        for dealer in dealers { try dealer.send(multipart: [[UInt8](), [UInt8](text: "READY")]) }
        var seen = Set<String>()
        for _ in 0..<2 {
            let frames = try router.receiveMultipart()
            #expect(frames.count == 3)
            #expect(frames[1] == [])
            #expect(frames[2] == [UInt8](text: "READY"))
            seen.insert(String(decoding: frames[0], as: UTF8.self))
        }
        #expect(seen == ["worker-a", "worker-b"])

        try router.send(multipart: [[UInt8](text: "worker-b"), [], [UInt8](text: "job for b")])
        try router.send(multipart: [[UInt8](text: "worker-a"), [], [UInt8](text: "job for a")])
        #expect(try dealers[0].receiveMultipart() == [[], [UInt8](text: "job for a")])
        #expect(try dealers[1].receiveMultipart() == [[], [UInt8](text: "job for b")])
    }

    @Test func pairOverInproc() throws {
        let name = uniqueInproc()
        let left = try makeSocket(.pair)
        try left.bind(name)
        let right = try makeSocket(.pair)
        try right.connect(name)
        try left.send("ping")
        #expect(try right.receiveString() == "ping")
        try right.send(multipart: [[UInt8](text: "pong"), []])
        #expect(try left.receiveMultipart() == [[UInt8](text: "pong"), []])
    }

    @Test func unbindAndDisconnect() throws {
        let (pull, endpoint) = try bindLoopback(.pull)
        let push = try makeSocket(.push)
        try push.connect(endpoint)
        try push.send("before")
        #expect(try pull.receiveString() == "before")
        try push.disconnect(endpoint)
        try pull.unbind(endpoint)
        // Both are gone: doing it again names the endpoint as unknown.
        #expect(throws: ZMQError(code: .noEntry, operation: "disconnect(\(endpoint))")) { try push.disconnect(endpoint) }
        #expect(throws: ZMQError(code: .noEntry, operation: "unbind(\(endpoint))")) { try pull.unbind(endpoint) }
    }
}

extension Socket {
    /// Waits for a multipart message until the receive timeout; nil when it passes.
    func tryReceiveMultipartWaiting() throws -> [[UInt8]]? {
        do {
            return try receiveMultipart()
        } catch let error where error.code == .again {
            return nil
        }
    }
}
