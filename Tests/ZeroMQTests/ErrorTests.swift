// Every error path the binding can be made to take: the code, both names, and the failed operation.

import Dispatch
import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(1)))
struct ErrorTests {
    @Test func errorCarriesSwiftAndCNamesAndTheOperation() {
        let error = ZMQError(code: .again, operation: "zmq_msg_recv")
        #expect(error.code.name == "again")
        #expect(error.code.cName == "EAGAIN")
        #expect(!error.code.message.isEmpty)
        #expect(error.description.contains("zmq_msg_recv"))
        #expect(error.description.contains("EAGAIN"))
        #expect(ZMQErrorCode.invalidState.cName == "EFSM")
        #expect(ZMQErrorCode.terminated.cName == "ETERM")
        #expect(ZMQErrorCode(rawValue: 99999).name == "errno99999")
    }

    @Test func malformedEndpointIsInvalid() throws {
        let socket = try makeSocket(.pull)
        let error = try #require(throws: ZMQError.self) { try socket.bind("tcp://127.0.0.1") }
        #expect(error.code == .invalidArgument)
        #expect(error.operation == "bind(tcp://127.0.0.1)")
    }

    @Test func unknownTransportIsNotSupported() throws {
        let socket = try makeSocket(.push)
        let error = try #require(throws: ZMQError.self) { try socket.connect("carrier-pigeon://roof") }
        #expect(error.code == .protocolNotSupported)
        #expect(error.code.cName == "EPROTONOSUPPORT")
    }

    @Test func bindingATakenAddressFails() throws {
        let (first, endpoint) = try bindLoopback(.pull)
        let second = try makeSocket(.pull)
        let error = try #require(throws: ZMQError.self) { try second.bind(endpoint) }
        #expect(error.code == .addressInUse)
        #expect(!first.isClosed)
        let name = uniqueInproc()
        try second.bind(name)
        let third = try makeSocket(.pull)
        #expect(throws: ZMQError(code: .addressInUse, operation: "bind(\(name))")) { try third.bind(name) }
    }

    @Test func bindingAForeignAddressFails() throws {
        let socket = try makeSocket(.pull)
        let error = try #require(throws: ZMQError.self) { try socket.bind("tcp://192.0.2.1:*") }
        #expect(error.code == .addressNotAvailable)
    }

    @Test func requestSocketOutOfTurnIsInvalidState() throws {
        let (rep, endpoint) = try bindLoopback(.rep)
        let req = try makeSocket(.req)
        try req.connect(endpoint)
        try req.send("one")
        let error = try #require(throws: ZMQError.self) { try req.send("two") }
        #expect(error.code == .invalidState)
        let repError = try #require(throws: ZMQError.self) { try rep.send("no request yet") }
        #expect(repError.code == .invalidState)
    }

    @Test func receiveTimeoutThrowsAgainButTryReceiveReturnsNil() throws {
        let pull = try makeSocket(.pull, timeout: .milliseconds(50))
        try pull.bind(uniqueInproc())
        let error = try #require(throws: ZMQError.self) { try pull.receive() }
        #expect(error.code == .again)
        #expect(try pull.tryReceive() == nil)
        #expect(try pull.tryReceiveMultipart() == nil)
        #expect(throws: ZMQError.self) { try pull.receiveMultipart() }
    }

    @Test func sendWithoutPeersWouldBlockOrTimesOut() throws {
        let push = try makeSocket(.push, timeout: .milliseconds(50))
        try push.bind(uniqueInproc())
        #expect(try push.trySend([UInt8](text: "nobody")) == false)
        #expect(try push.trySend(multipart: [[UInt8](text: "a"), [UInt8](text: "b")]) == false)
        let error = try #require(throws: ZMQError.self) { try push.send("nobody") }
        #expect(error.code == .again)
    }

    @Test func operationNotSupportedBySocketType() throws {
        let pub = try makeSocket(.pub)
        try pub.bind(uniqueInproc())
        let error = try #require(throws: ZMQError.self) { try pub.receive() }
        #expect(error.code == .notSupported)
        let pull = try makeSocket(.pull)
        let sendError = try #require(throws: ZMQError.self) { try pull.send("x") }
        #expect(sendError.code == .notSupported)
    }

    @Test func routerMandatoryRefusesUnknownRoutingID() throws {
        let router = try makeSocket(.router)
        try router.bind(uniqueInproc())
        try router.set(.routerMandatory, true)
        let error = try #require(throws: ZMQError.self) {
            try router.send(multipart: [[UInt8](text: "nobody"), [UInt8](text: "hello")])
        }
        #expect(error.code == .hostUnreachable)
    }

    @Test func invalidOptionValues() throws {
        let dealer = try makeSocket(.dealer)
        // A routing id may not be empty.
        let error = try #require(throws: ZMQError.self) { try dealer.set(.routingID, []) }
        #expect(error.code == .invalidArgument)
        #expect(error.operation == "zmq_setsockopt(ZMQ_ROUTING_ID)")
        // A CURVE key is 32 bytes (or 40 Z85 characters).
        #expect(throws: ZMQError.self) { try dealer.set(.curveServerKey, [1, 2, 3]) }
        // Subscribing is for SUB/XSUB only.
        #expect(throws: ZMQError.self) { try dealer.subscribe("x") }
        // ROUTER_MANDATORY is write-only.
        #expect(throws: ZMQError.self) { try dealer.get(.routerMandatory) }
    }

    @Test func everyCallOnAClosedSocketFailsWithNotSocket() throws {
        let socket = try makeSocket(.dealer)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        let calls: [(String, () throws -> Void)] = [
            ("bind", { try socket.bind("inproc://closed") }),
            ("connect", { try socket.connect("inproc://closed") }),
            ("unbind", { try socket.unbind("inproc://closed") }),
            ("disconnect", { try socket.disconnect("inproc://closed") }),
            ("send", { try socket.send("x") }),
            ("send message", { try socket.send(Message()) }),
            ("receive", { _ = try socket.receive() }),
            ("tryReceive", { _ = try socket.tryReceive() }),
            ("set", { try socket.set(.linger, nil) }),
            ("get", { _ = try socket.get(.linger) }),
            ("lastEndpoint", { _ = try socket.lastEndpoint }),
            ("monitor", { _ = try socket.monitor() }),
        ]
        for (name, call) in calls {
            do {
                try call()
                Issue.record("\(name) succeeded on a closed socket")
            } catch let error as ZMQError {
                #expect(error.code == .notSocket, "\(name)")
                #expect(error.operation.contains("closed socket"), "\(name)")
            } catch {
                Issue.record("\(name) threw \(error)")
            }
        }
    }

    @Test func aSignalDuringABlockingReceiveIsRetriedNotThrown() throws {
        final class Receiver: @unchecked Sendable {
            // @unchecked: `thread` is written before `ready` is signalled and `received`/`failure`
            // before `done` is; the test thread reads each only after waiting on that semaphore.
            var thread: pthread_t?
            var received: String?
            var failure: String?
            let ready = DispatchSemaphore(value: 0)
            let done = DispatchSemaphore(value: 0)
        }
        // Without a handler SIGUSR1 would end the process; this one does nothing but interrupt poll(2).
        signal(SIGUSR1) { _ in }
        let name = uniqueInproc()
        let receiver = Receiver()
        // A thread of its own, with SIGUSR1 unblocked: the test runner's threads may block signals.
        Thread {
            var signals = sigset_t()
            sigemptyset(&signals)
            sigaddset(&signals, SIGUSR1)
            pthread_sigmask(SIG_UNBLOCK, &signals, nil)
            do {
                let pull = try makeSocket(.pull)
                try pull.bind(name)
                receiver.thread = pthread_self()
                receiver.ready.signal()
                // libzmq returns EINTR from the interrupted wait; the binding retries instead of throwing.
                receiver.received = try pull.receiveString()
            } catch {
                receiver.failure = "\(error)"
                receiver.ready.signal()
            }
            receiver.done.signal()
        }.start()

        try #require(receiver.ready.wait(timeout: .now() + 5) == .success)
        let thread = try #require(receiver.thread, "\(receiver.failure ?? "")")
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.03)
            pthread_kill(thread, SIGUSR1)
        }
        let push = try makeSocket(.push)
        try push.connect(name)
        try push.send("after the signals")
        try #require(receiver.done.wait(timeout: .now() + 10) == .success)
        #expect(receiver.failure == nil)
        #expect(receiver.received == "after the signals")
    }

    @Test func contextShutdownEndsABlockingReceiveWithTerminated() throws {
        let context = try Context()
        let pull = try Socket(.pull, context: context)
        try pull.set(.receiveTimeout, .seconds(10))
        try pull.bind(uniqueInproc())
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { context.shutdown() }
        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(throws: ZMQError.self) { try pull.receive() }
        #expect(error.code == .terminated)
        #expect(clock.now - start < .seconds(5))
        // After shutdown no socket can be made in the context.
        #expect(throws: ZMQError.self) { try Socket(.push, context: context) }
        pull.close()
    }
}
