// Frames of every size and multipart messages, in Message and through sockets: nothing cut, nothing over-read.

import Foundation
import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct MessageTests {
    @Test func emptyMessageHasNoBytes() {
        let message = Message()
        #expect(message.count == 0)
        #expect(message.bytes == [])
        #expect(message.string == "")
        #expect(!message.hasMore)
    }

    @Test func messageCopiesBytesAndText() throws {
        #expect(Message(bytes: [1, 2, 3]).bytes == [1, 2, 3])
        #expect(Message(string: "héllo").string == "héllo")
        #expect(Message(bytes: [UInt8](text: "abc").reversed()).string == "cba")
        let sized = try Message(count: 4)
        sized.withUnsafeMutableBytes { buffer in buffer.copyBytes(from: [9, 8, 7, 6]) }
        #expect(sized.bytes == [9, 8, 7, 6])
    }

    @Test func negativeSizeIsRejected() {
        #expect(throws: ZMQError.self) { try Message(count: -1) }
        do {
            _ = try Message(count: -5)
        } catch {
            #expect(error.code == .invalidArgument)
        }
    }

    @Test func impossibleSizeFailsWithOutOfMemory() {
        do {
            _ = try Message(count: Int.max)
            Issue.record("a message of Int.max bytes was allocated")
        } catch {
            #expect(error.code == .outOfMemory)
            #expect(error.operation.contains("zmq_msg_init_size"))
        }
    }

    @Test func zeroCopyMessageFreesItsBufferOnceSent() throws {
        final class Flag: @unchecked Sendable {
            // @unchecked: written once by libzmq's free callback, read after the receiver has the bytes
            // and the socket has been closed, which orders the two.
            var freed = 0
        }
        let flag = Flag()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        buffer.copyBytes(from: patternBytes(1000))
        let message = try Message(noCopy: buffer) { bytes in
            flag.freed += 1
            bytes.deallocate()
        }
        #expect(message.count == 1000)
        let name = uniqueInproc()
        let pull = try makeSocket(.pull)
        try pull.bind(name)
        let push = try makeSocket(.push)
        try push.connect(name)
        try push.send(message)
        #expect(message.count == 0)
        #expect(try pull.receive() == patternBytes(1000))
        push.close()
        pull.close()
        // Over inproc the receiver got the same buffer; it is freed when the last reference goes.
        #expect(flag.freed == 1)
    }

    @Test(arguments: ["inproc", "tcp"])
    func zeroByteFrames(transport: String) throws {
        let (pull, push) = try connectedPair(transport: transport)
        try push.send([UInt8]())
        #expect(try pull.receive() == [])
        try push.send(Message())
        let message = try pull.receiveMessage()
        #expect(message.count == 0)
        try push.send(multipart: [[UInt8]]([[]]))
        #expect(try pull.receiveMultipart() == [[]])
    }

    @Test(arguments: ["inproc", "tcp"])
    func thirtyTwoMebibyteFrame(transport: String) throws {
        let (pull, push) = try connectedPair(transport: transport)
        let big = patternBytes(32 * 1024 * 1024, seed: 7)
        try push.send(big)
        let received = try pull.receiveMessage()
        #expect(received.count == big.count)
        let equal = received.withUnsafeBytes { frame in
            big.withUnsafeBytes { expected in memcmp(frame.baseAddress!, expected.baseAddress!, expected.count) == 0 }
        }
        #expect(equal)

        try push.send(multipart: [[UInt8](text: "head"), big, []])
        let frames = try pull.receiveMultipart()
        #expect(frames.count == 3)
        #expect(frames[0] == [UInt8](text: "head"))
        #expect(frames[1] == big)
        #expect(frames[2] == [])
    }

    @Test func multipartWithEmptyFramesKeepsEveryFrame() throws {
        let (pull, push) = try connectedPair(transport: "tcp")
        let frames: [[UInt8]] = [[], [], [UInt8](text: "middle"), [], [0, 0, 0], []]
        try push.send(multipart: frames)
        #expect(try pull.receiveMultipart() == frames)
        // Frame by frame, with the more flag read back from the socket and the message.
        try push.send([UInt8](), more: true)
        try push.send("x", more: true)
        try push.send(Message(), more: false)
        let first = try pull.receiveMessage()
        #expect(first.count == 0 && first.hasMore)
        #expect(try pull.hasMore)
        #expect(try pull.receiveString() == "x")
        #expect(try pull.hasMore)
        #expect(try pull.receive() == [])
        #expect(try pull.hasMore == false)
    }

    @Test func nonContiguousCollectionsAreSentWhole() throws {
        let (pull, push) = try connectedPair(transport: "inproc")
        let frame = [UInt8](text: "abcdef").reversed()
        try push.send(frame)
        #expect(try pull.receiveString() == "fedcba")
        try push.send(multipart: [(0..<5).map { UInt8($0) }.lazy.map { $0 * 2 }])
        #expect(try pull.receiveMultipart() == [[0, 2, 4, 6, 8]])
    }

    @Test func receiveIntoBufferReportsFullSizeAndNeverOverruns() throws {
        let (pull, push) = try connectedPair(transport: "inproc")
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0xAA)
        try push.send(patternBytes(100))
        // Only 8 of the 16 bytes are offered; the frame is 100.
        let window = UnsafeMutableRawBufferPointer(rebasing: storage[0..<8])
        #expect(try pull.receive(into: window) == 100)
        #expect(Array(storage[0..<8]) == Array(patternBytes(100)[0..<8]))
        #expect(Array(storage[8..<16]) == [UInt8](repeating: 0xAA, count: 8))
        // A frame smaller than the buffer fills only its own length.
        try push.send([1, 2, 3])
        #expect(try pull.receive(into: storage) == 3)
        #expect(Array(storage[0..<4]) == [1, 2, 3, Array(patternBytes(100))[3]])
        #expect(try pull.receive(into: storage, dontWait: true) == nil)
    }

    @Test func messageIsReusedAcrossReceives() throws {
        let (pull, push) = try connectedPair(transport: "inproc")
        let message = Message()
        for size in [10, 0, 5000, 1] {
            try push.send(patternBytes(size))
            #expect(try pull.receive(into: message))
            #expect(message.bytes == patternBytes(size))
        }
        #expect(try pull.receive(into: message, dontWait: true) == false)
    }

    @Test func sendFromRawBuffer() throws {
        let (pull, push) = try connectedPair(transport: "inproc")
        let bytes = patternBytes(64)
        try bytes.withUnsafeBytes { buffer in try push.send(buffer, more: true) }
        try push.send(bytes)
        #expect(try pull.receiveMultipart() == [bytes, bytes])
    }

    /// A PULL and a PUSH connected to it over `transport`.
    private func connectedPair(transport: String) throws -> (pull: Socket, push: Socket) {
        let pull = try makeSocket(.pull, timeout: .seconds(10))
        let endpoint: String
        if transport == "tcp" {
            try pull.bind("tcp://127.0.0.1:*")
            endpoint = try pull.lastEndpoint
        } else {
            endpoint = uniqueInproc()
            try pull.bind(endpoint)
        }
        let push = try makeSocket(.push, timeout: .seconds(10))
        try push.connect(endpoint)
        return (pull, push)
    }
}
