// The socket monitor: connection events as typed values, read without blocking or with a timeout.

import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct MonitorTests {
    @Test func eventBitsMatchLibzmq() {
        #expect(SocketEvent.allCases.count == 15)
        for event in SocketEvent.allCases {
            #expect(SocketEvent(bit: event.bit) == event)
            #expect(event.bit.nonzeroBitCount == 1)
        }
        #expect(SocketEvent.connected.bit == 0x0001)
        #expect(SocketEvent.handshakeFailedAuth.bit == 0x4000)
        #expect(SocketEvent(bit: 0x10000) == nil)
    }

    @Test func reportsListeningAcceptedConnectedHandshakeAndDisconnect() throws {
        let pull = try makeSocket(.pull)
        let serverMonitor = try pull.monitor()
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint
        let listening = try serverMonitor.wait(for: [.listening], timeout: .seconds(5))
        #expect(listening?.endpoint == endpoint)

        let push = try makeSocket(.push)
        let clientMonitor = try push.monitor(events: [.connected, .handshakeSucceeded, .disconnected, .monitorStopped])
        try push.connect(endpoint)
        #expect(try clientMonitor.wait(for: [.connected], timeout: .seconds(5))?.endpoint == endpoint)
        #expect(try clientMonitor.wait(for: [.handshakeSucceeded], timeout: .seconds(5)) != nil)
        #expect(try serverMonitor.wait(for: [.accepted], timeout: .seconds(5)) != nil)

        // The client sees the server go away.
        pull.close()
        let disconnected = try clientMonitor.wait(for: [.disconnected], timeout: .seconds(5))
        #expect(disconnected?.endpoint == endpoint)
        // Only the events asked for are reported.
        clientMonitor.stop()
        var stopped = false
        while let event = try clientMonitor.receive(timeout: .seconds(5)) {
            #expect([.connected, .handshakeSucceeded, .disconnected, .monitorStopped].contains(event.event))
            if event.event == .monitorStopped { stopped = true; break }
        }
        #expect(stopped)
    }

    @Test func receiveReturnsNilWhenNothingHappens() throws {
        let pull = try makeSocket(.pull)
        let monitor = try pull.monitor()
        #expect(try monitor.tryReceive() == nil)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try monitor.receive(timeout: .milliseconds(50)) == nil)
        #expect(clock.now - start >= .milliseconds(45))
        #expect(try monitor.wait(for: [.connected], timeout: .milliseconds(20)) == nil)
    }

    @Test func connectRetriesAreReported() throws {
        let push = try makeSocket(.push)
        try push.set(.reconnectInterval, .milliseconds(10))
        let monitor = try push.monitor(events: [.connectDelayed, .connectRetried, .closed])
        // Port 9 (discard) has no listener on the loopback here: the connect is refused and retried.
        try push.connect("tcp://127.0.0.1:9")
        let retried = try monitor.wait(for: [.connectRetried], timeout: .seconds(5))
        #expect(retried?.endpoint == "tcp://127.0.0.1:9")
    }

    @Test func closingTheSocketStopsTheMonitor() throws {
        let pair = try makeSocket(.pair)
        let monitor = try pair.monitor(events: [.monitorStopped])
        pair.close()
        #expect(try monitor.receive(timeout: .seconds(5))?.event == .monitorStopped)
        monitor.stop()  // harmless once the socket is gone
    }

    @Test func aNewMonitorReplacesTheOldOneWhichCannotStopIt() throws {
        let pull = try makeSocket(.pull)
        var first: SocketMonitor? = try pull.monitor(events: [.listening, .monitorStopped])
        let second = try pull.monitor(events: [.listening])
        // libzmq stopped the first monitor when the second started.
        #expect(try first?.receive(timeout: .seconds(5))?.event == .monitorStopped)
        first?.stop()
        first = nil
        try pull.bind("tcp://127.0.0.1:*")
        #expect(try second.receive(timeout: .seconds(5))?.event == .listening)
    }

    @Test func monitorSocketCanBePolledWithOthers() throws {
        let pull = try makeSocket(.pull)
        let monitor = try pull.monitor(events: [.listening])
        let poller = Poller()
        let index = poller.add(monitor.socket)
        try pull.bind(uniqueInproc())
        try pull.bind("tcp://127.0.0.1:*")
        #expect(try poller.poll(timeout: .seconds(5)) == 1)
        #expect(poller.isReadable(index))
        #expect(try monitor.tryReceive()?.event == .listening)
    }

    @Test func errorCodeIsGivenForFailureEvents() {
        let failure = SocketMonitorEvent(event: .handshakeFailedNoDetail, value: UInt32(ZMQErrorCode.protocolError.rawValue), endpoint: "tcp://x:1")
        #expect(failure.errorCode == .protocolError)
        #expect(SocketMonitorEvent(event: .connected, value: 12, endpoint: "").errorCode == nil)
        #expect(failure.description.contains("handshakeFailedNoDetail"))
    }
}
