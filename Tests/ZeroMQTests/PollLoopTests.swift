// Checks the poll loop: socket and file-descriptor handlers, timers in deadline order, cancelling, stopping.

import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(1)))
struct PollLoopTests {
    @Test func timersFireInDeadlineOrder() throws {
        let loop = PollLoop()
        var fired: [String] = []
        let start = ContinuousClock.now
        loop.schedule(at: start + .milliseconds(60)) { fired.append("c") }
        loop.schedule(at: start + .milliseconds(20)) { fired.append("a") }
        loop.schedule(at: start + .milliseconds(40)) { fired.append("b1") }
        loop.schedule(at: start + .milliseconds(40)) { fired.append("b2") }
        loop.schedule(at: start + .milliseconds(80)) { loop.stop() }
        try loop.run()
        #expect(fired == ["a", "b1", "b2", "c"])
        #expect(ContinuousClock.now - start >= .milliseconds(80))
        #expect(loop.timerCount == 0)
    }

    @Test func aRepeatingTimerRepeatsUntilCancelled() throws {
        let loop = PollLoop()
        var ticks = 0
        var repeating: PollLoop.Token?
        repeating = loop.schedule(after: .milliseconds(5), repeating: .milliseconds(5)) {
            ticks += 1
            if ticks == 3 { loop.cancel(repeating!) }
        }
        loop.schedule(after: .milliseconds(100)) { loop.stop() }
        try loop.run()
        #expect(ticks == 3)
    }

    @Test func aSocketHandlerRunsWhenAMessageArrives() throws {
        let endpoint = uniqueInproc()
        let pull = try makeSocket(.pull)
        try pull.bind(endpoint)
        let push = try makeSocket(.push)
        try push.connect(endpoint)
        let loop = PollLoop()
        var received: [[UInt8]] = []
        loop.register(pull) { events in
            #expect(events.contains(.in))
            while let frame = try pull.tryReceive() { received.append(frame) }
            if received.count == 2 { loop.stop() }
        }
        loop.schedule(after: .milliseconds(10)) { try push.send([1]); try push.send([2]) }
        loop.schedule(after: .seconds(10)) { loop.stop() }
        try loop.run()
        #expect(received == [[1], [2]])
    }

    @Test func aFileDescriptorHandlerRunsWhenItIsReadable() throws {
        var descriptors: [Int32] = [0, 0]
        try #require(pipe(&descriptors) == 0)
        defer { close(descriptors[0]); close(descriptors[1]) }
        let loop = PollLoop()
        var read: UInt8 = 0
        loop.register(fileDescriptor: descriptors[0]) { events in
            #expect(events.contains(.in))
            _ = Foundation.read(descriptors[0], &read, 1)
            loop.stop()
        }
        // Nothing is readable yet: one round only waits.
        try loop.runOnce(maxWait: .milliseconds(20))
        #expect(read == 0)
        var byte: UInt8 = 42
        _ = write(descriptors[1], &byte, 1)
        loop.schedule(after: .seconds(10)) { loop.stop() }
        try loop.run()
        #expect(read == 42)
    }

    @Test func cancelledAndPausedRegistrationsAreNotCalled() throws {
        let endpoint = uniqueInproc()
        let pull = try makeSocket(.pull)
        try pull.bind(endpoint)
        let push = try makeSocket(.push)
        try push.connect(endpoint)
        try push.send([1])
        let loop = PollLoop()
        var calls = 0
        let token = loop.register(pull) { _ in calls += 1 }
        loop.setEvents([], for: token)
        try loop.runOnce(maxWait: .milliseconds(20))
        #expect(calls == 0)
        loop.setEvents(.in, for: token)
        try loop.runOnce(maxWait: .milliseconds(1000))
        #expect(calls == 1)
        loop.cancel(token)
        #expect(loop.registrationCount == 0)
        loop.register(fileDescriptor: -1) { _ in }  // keeps the loop polling something
        try loop.runOnce(maxWait: .milliseconds(20))
        #expect(calls == 1)
    }

    @Test func aThrowingHandlerEndsRun() throws {
        let loop = PollLoop()
        loop.schedule(after: .milliseconds(1)) { throw TestFailure("boom") }
        #expect(throws: TestFailure("boom")) { try loop.run() }
    }
}
