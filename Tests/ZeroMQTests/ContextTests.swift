// Context lifetime: sockets keep their context alive, and dropping a context never hangs.

import Dispatch
import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct ContextTests {
    @Test func socketKeepsItsContextAlive() throws {
        weak var weakContext: Context?
        var socket: Socket?
        do {
            let context = try Context()
            weakContext = context
            socket = try Socket(.pair, context: context)
        }
        // The only reference left is the socket's: the context must still be there and usable.
        #expect(weakContext != nil)
        try socket?.bind(uniqueInproc())
        socket = nil
        // Closing the last socket releases the context, whose zmq_ctx_term returns at once.
        #expect(weakContext == nil)
    }

    @Test func droppingAContextWithUnsentMessagesDoesNotHang() throws {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let context = try Context()
            let push = try Socket(.push, context: context)
            try push.connect("tcp://127.0.0.1:9")  // nobody listens: the message stays queued
            _ = try push.trySend([UInt8](text: "stuck"))
            // LINGER is zero, so neither the close nor the context's termination waits for it.
        }
        #expect(clock.now - start < .seconds(2))
    }

    @Test func contextWithSeveralIOThreads() throws {
        let context = try Context(ioThreads: 2)
        let (pull, endpoint) = try bindLoopback(.pull, context: context)
        let push = try makeSocket(.push, context: context)
        try push.connect(endpoint)
        try push.send("via two I/O threads")
        #expect(try pull.receiveString() == "via two I/O threads")
        #expect(context.maxSockets > 0)
    }

    @Test func socketLimitIsEnforcedWithTooManyFiles() throws {
        let context = try Context(maxSockets: 2)
        #expect(context.maxSockets == 2)
        let first = try Socket(.pair, context: context)
        let second = try Socket(.pair, context: context)
        let error = try #require(throws: ZMQError.self) { try Socket(.pair, context: context) }
        #expect(error.code == .tooManyFiles)
        #expect(error.operation == "zmq_socket(PAIR)")
        #expect(!first.isClosed && !second.isClosed)
        #expect(throws: ZMQError.self) { try Context(maxSockets: 0) }
    }

    @Test func invalidIOThreadCountIsRejected() {
        #expect(throws: ZMQError.self) { try Context(ioThreads: -1) }
    }

    @Test func libraryVersionAndCapabilities() {
        let version = ZMQLibrary.version
        #expect(version.major == 4)
        #expect(ZMQLibrary.versionString == "\(version.major).\(version.minor).\(version.patch)")
        #expect(ZMQLibrary.has("curve"))
        #expect(!ZMQLibrary.has("no-such-capability"))
    }
}
