// Checks the actor primitive: the ready handshake, setup and run failures, typed messages, a joined stop.

import Foundation
import Synchronization
import Testing
import ZeroMQ

/// Commands of the test actor, encoded with a kind frame and one frame per argument.
enum EchoCommand: ActorMessage, Equatable {
    case echo([UInt8])
    case add(UInt64, UInt64)
    case fail(String)

    var frames: [[UInt8]] {
        switch self {
        case .echo(let bytes): [[1], bytes]
        case .add(let left, let right): [[2], withUnsafeBytes(of: left.bigEndian, Array.init), withUnsafeBytes(of: right.bigEndian, Array.init)]
        case .fail(let text): [[3], Array(text.utf8)]
        }
    }

    init(frames: [[UInt8]]) throws {
        func number(_ frame: [UInt8]) throws -> UInt64 {
            guard frame.count == 8 else { throw TestFailure("an integer frame of \(frame.count) bytes") }
            return frame.reduce(0) { $0 << 8 | UInt64($1) }
        }
        switch (frames.first, frames.count) {
        case ([1], 2): self = .echo(frames[1])
        case ([2], 3): self = .add(try number(frames[1]), try number(frames[2]))
        case ([3], 2): self = .fail(String(decoding: frames[1], as: UTF8.self))
        default: throw TestFailure("not an echo command")
        }
    }
}

enum EchoEvent: ActorMessage, Equatable {
    case started(String)
    case echoed([UInt8])
    case sum(UInt64)

    var frames: [[UInt8]] {
        switch self {
        case .started(let text): [[1], Array(text.utf8)]
        case .echoed(let bytes): [[2], bytes]
        case .sum(let value): [[3], withUnsafeBytes(of: value.bigEndian, Array.init)]
        }
    }

    init(frames: [[UInt8]]) throws {
        switch (frames.first, frames.count) {
        case ([1], 2): self = .started(String(decoding: frames[1], as: UTF8.self))
        case ([2], 2): self = .echoed(frames[1])
        case ([3], 2) where frames[1].count == 8: self = .sum(frames[1].reduce(0) { $0 << 8 | UInt64($1) })
        default: throw TestFailure("not an echo event")
        }
    }
}

struct TestFailure: Error, Equatable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An actor that answers commands until terminated, counting its exits in `exits`.
func startEchoActor(exits: SharedCount) throws -> ActorThread<EchoCommand, EchoEvent> {
    try ActorThread<EchoCommand, EchoEvent>(name: "echo") { pipe in
        defer { exits.increment() }
        try pipe.signalReady(.started("hello"))
        let loop = PollLoop()
        pipe.attach(to: loop) { command in
            switch command {
            case .echo(let bytes): try pipe.send(.echoed(bytes))
            case .add(let left, let right): try pipe.send(.sum(left + right))
            case .fail(let text): throw TestFailure(text)
            }
        }
        try loop.run()
    }
}

/// A count the test and an actor thread both see.
final class SharedCount: Sendable {
    private let state = Mutex(0)
    func increment() { state.withLock { $0 += 1 } }
    var value: Int { state.withLock { $0 } }
}

@Suite(.timeLimit(.minutes(1)))
struct ActorThreadTests {
    @Test func startReturnsOnceReadyWithTheReport() throws {
        let exits = SharedCount()
        let actor = try startEchoActor(exits: exits)
        #expect(actor.readyReport == .started("hello"))
        #expect(!actor.hasEnded)
        actor.stop()
        #expect(actor.hasEnded)
    }

    @Test func aSetupFailureIsThrownByStart() throws {
        let ran = SharedCount()
        #expect(throws: TestFailure("cannot bind")) {
            _ = try ActorThread<Never, Never>(name: "failing") { _ in
                ran.increment()
                throw TestFailure("cannot bind")
            }
        }
        #expect(ran.value == 1)
    }

    @Test func aBodyThatEndsWithoutReadyIsAnError() throws {
        #expect(throws: ActorError.endedBeforeReady(actor: "quiet")) {
            _ = try ActorThread<Never, Never>(name: "quiet") { _ in }
        }
    }

    @Test func commandsAndEventsRoundTrip() throws {
        let exits = SharedCount()
        let actor = try startEchoActor(exits: exits)
        defer { actor.stop() }
        try actor.send(.echo([0, 1, 2, 255]))
        #expect(try actor.receive(timeout: .seconds(5)) == .echoed([0, 1, 2, 255]))
        try actor.send(.add(40, 2))
        #expect(try actor.receive(timeout: .seconds(5)) == .sum(42))
        try actor.send(.echo([]))
        #expect(try actor.receive(timeout: .seconds(5)) == .echoed([]))
        #expect(try actor.tryReceive() == nil)
    }

    @Test func anErrorAfterReadyIsThrownByReceive() throws {
        let exits = SharedCount()
        let actor = try startEchoActor(exits: exits)
        try actor.send(.fail("disk full"))
        #expect(throws: TestFailure("disk full")) { _ = try actor.receive(timeout: .seconds(5)) }
        actor.join()
        #expect(exits.value == 1)
    }

    @Test func stopJoinsTheThread() throws {
        let exits = SharedCount()
        let actor = try startEchoActor(exits: exits)
        try actor.send(.echo([7]))
        actor.stop()
        // The body's last statement ran before stop returned: the thread was joined, not just told.
        #expect(exits.value == 1)
        #expect(actor.socket.isClosed)
        actor.stop()
        #expect(exits.value == 1)
    }

    @Test func releasingTheHandleStopsTheActor() throws {
        let exits = SharedCount()
        do {
            let actor = try startEchoActor(exits: exits)
            #expect(actor.readyReport != nil)
        }
        #expect(exits.value == 1)
    }

    @Test func stopReachesABusyActorBehindABacklogAndSendsNeverBlock() throws {
        let exits = SharedCount()
        let gate = SharedCount()
        let actor = try ActorThread<EchoCommand, Never>(name: "busy") { pipe in
            defer { exits.increment() }
            try pipe.signalReady()
            // Busy (not reading) until the owner has queued its backlog.
            for _ in 0..<500 where gate.value == 0 { Thread.sleep(forTimeInterval: 0.01) }
            while case .command = try pipe.receive() {}
        }
        // The pipe has no high-water mark, so owner and actor can never block each other by sending.
        var queued = 0
        while queued < 20_000, (try? actor.socket.trySend(multipart: [[1], [1], [0]])) == true { queued += 1 }
        #expect(queued == 20_000)
        gate.increment()
        actor.stop()
        #expect(exits.value == 1)
    }

    @Test func actorsGetUniquePipes() throws {
        let exits = SharedCount()
        let actors = try (0..<8).map { _ in try startEchoActor(exits: exits) }
        for (index, actor) in actors.enumerated() { try actor.send(.add(UInt64(index), 0)) }
        for (index, actor) in actors.enumerated() { #expect(try actor.receive(timeout: .seconds(5)) == .sum(UInt64(index))) }
        for actor in actors { actor.stop() }
        #expect(exits.value == 8)
    }
}
