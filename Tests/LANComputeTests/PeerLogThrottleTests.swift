// One protocol-error line per peer per interval, and a bounded number of lines in all.

import Testing
@testable import LANCompute

@Suite struct PeerLogThrottleTests {
    @Test func aFloodingPeerIsOneLinePerInterval() {
        var throttle = PeerLogThrottle(interval: .seconds(10))
        let start = ContinuousClock.now
        var logged = 0
        // 1,000 errors over 25 s: logged at 0 s, 10 s and 20 s.
        for step in 0..<1000 where throttle.admit([1], at: start + .milliseconds(step * 25)) { logged += 1 }
        #expect(logged == 3)
    }

    @Test func anotherPeersFirstErrorIsNotHidden() {
        var throttle = PeerLogThrottle(interval: .seconds(10))
        let now = ContinuousClock.now
        for _ in 0..<100 { _ = throttle.admit([1], at: now) }
        let first = throttle.admit([2], at: now)
        let second = throttle.admit([2], at: now + .seconds(1))
        #expect(first)
        #expect(!second)
    }

    @Test func manyPeersAreBoundedInLinesAndInMemory() {
        var throttle = PeerLogThrottle(interval: .seconds(10), linesPerInterval: 50, capacity: 100)
        let now = ContinuousClock.now
        let logged = (0..<1000).filter { throttle.admit([UInt8($0 % 256), UInt8($0 / 256)], at: now) }.count
        #expect(logged == 50)
        // The next interval logs again, and the table never grew past its capacity to get there.
        let later = (1000..<1200).filter { throttle.admit([UInt8($0 % 256), UInt8($0 / 256)], at: now + .seconds(11)) }.count
        #expect(later == 50)
    }
}
