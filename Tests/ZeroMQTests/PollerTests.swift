// Waiting on several sockets and file descriptors with a timeout.

import Foundation
import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1)))
struct PollerTests {
    @Test func pollTimesOutWhenNothingIsReady() throws {
        let pull = try makeSocket(.pull)
        try pull.bind(uniqueInproc())
        let poller = Poller()
        let index = poller.add(pull)
        #expect(poller.count == 1)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try poller.poll(timeout: .milliseconds(100)) == 0)
        let elapsed = clock.now - start
        #expect(elapsed >= .milliseconds(90))
        #expect(elapsed < .seconds(3))
        #expect(!poller.isReadable(index))
        #expect(try poller.poll(timeout: .zero) == 0)
    }

    @Test func hugeAndNegativeTimeoutsDoNotOverflow() throws {
        let pull = try makeSocket(.pull)
        try pull.bind(uniqueInproc())
        try pull.set(.receiveTimeout, .seconds(Int64.max / 2))
        #expect(try pull.get(.receiveTimeout) == .milliseconds(Int(Int32.max)))
        try pull.set(.receiveTimeout, .seconds(-3))
        #expect(try pull.get(.receiveTimeout) == .zero)
        let poller = Poller()
        poller.add(pull)
        #expect(try poller.poll(timeout: .seconds(-1)) == 0)
        #expect(try poller.poll(timeout: .nanoseconds(1)) == 0)
        let push = try makeSocket(.push)
        try push.connect(try pull.lastEndpoint)
        try push.send("x")
        #expect(try poller.poll(timeout: .seconds(Int64.max / 2)) == 1)
    }

    @Test func pollFindsTheReadySocketAmongSeveral() throws {
        let names = (0..<3).map { uniqueInproc("poll\($0)") }
        let pulls = try names.map { name in
            let pull = try makeSocket(.pull)
            try pull.bind(name)
            return pull
        }
        let push = try makeSocket(.push)
        try push.connect(names[1])
        let poller = Poller()
        let indices = pulls.map { poller.add($0) }
        try push.send(multipart: [[UInt8](text: "for"), [UInt8](text: "one")])
        #expect(try poller.poll(timeout: .seconds(5)) == 1)
        #expect(indices.map(poller.isReadable) == [false, true, false])
        #expect(poller.readyEvents(at: indices[1]) == .in)
        #expect(try pulls[1].receiveMultipart() == [[UInt8](text: "for"), [UInt8](text: "one")])
        #expect(try poller.poll(timeout: .milliseconds(10)) == 0)
    }

    @Test func pollForWritability() throws {
        let name = uniqueInproc()
        let push = try makeSocket(.push)
        try push.bind(name)
        let poller = Poller()
        let index = poller.add(push, events: .out)
        #expect(try poller.poll(timeout: .milliseconds(20)) == 0)
        let pull = try makeSocket(.pull)
        try pull.connect(name)
        #expect(try poller.poll(timeout: .seconds(5)) == 1)
        #expect(poller.readyEvents(at: index).contains(.out))
        #expect(try push.poll(.out, timeout: .zero) == .out)
        poller.setEvents([], at: index)
        #expect(try poller.poll(timeout: .zero) == 0)
    }

    @Test func pollPlainFileDescriptor() throws {
        let pipe = Pipe()
        let poller = Poller()
        let index = poller.add(fileDescriptor: pipe.fileHandleForReading.fileDescriptor)
        #expect(try poller.poll(timeout: .milliseconds(10)) == 0)
        pipe.fileHandleForWriting.write(Data([1]))
        #expect(try poller.poll(timeout: .seconds(5)) == 1)
        #expect(poller.isReadable(index))
    }

    @Test func aSocketClosedAfterAddingIsIgnored() throws {
        let name = uniqueInproc()
        let closing = try makeSocket(.pull)
        try closing.bind(name)
        let open = try makeSocket(.pull)
        let openName = uniqueInproc()
        try open.bind(openName)
        let poller = Poller()
        let closedIndex = poller.add(closing)
        let openIndex = poller.add(open)
        closing.close()
        #expect(try poller.poll(timeout: .milliseconds(10)) == 0)
        let push = try makeSocket(.push)
        try push.connect(openName)
        try push.send("still works")
        #expect(try poller.poll(timeout: .seconds(5)) == 1)
        #expect(poller.isReadable(openIndex))
        #expect(!poller.isReadable(closedIndex))
        // Adding an already closed socket is harmless too.
        let alreadyClosed = try Socket(.pull)
        alreadyClosed.close()
        let lateIndex = poller.add(alreadyClosed)
        #expect(try poller.poll(timeout: .zero) == 1)
        #expect(poller.readyEvents(at: lateIndex) == [])
    }

    @Test func singleSocketPollReportsReadiness() throws {
        let name = uniqueInproc()
        let pull = try makeSocket(.pull)
        try pull.bind(name)
        #expect(try pull.poll(timeout: .milliseconds(10)) == [])
        let push = try makeSocket(.push)
        try push.connect(name)
        try push.send("x")
        #expect(try pull.poll(timeout: .seconds(5)) == .in)
    }
}
