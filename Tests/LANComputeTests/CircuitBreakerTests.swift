// The circuit breaker's state machine on its own: thresholds over a sliding window, cool-downs that double, the probe.

import Testing
@testable import LANCompute

@Suite struct CircuitBreakerTests {
    let start = ContinuousClock.now
    let policy = BreakerPolicy(enabled: true, failures: 3, window: 6, cooldown: .seconds(10))

    @Test func tripsOnlyWhenEnoughOfTheWindowFailed() {
        let breaker = CircuitBreaker(policy: policy, now: start)
        #expect(breaker.record(failed: true, at: start) == .unchanged)
        #expect(breaker.record(failed: true, at: start) == .unchanged)
        #expect(breaker.record(failed: true, at: start) == .tripped, "3 failures of 3 outcomes")
        #expect(breaker.state == .closed, "tripping is the core's cue; only open() opens it")

        // 3 failures among 6 outcomes is half: it trips; 3 of 7 would not, but the window keeps 6.
        let mixed = CircuitBreaker(policy: policy, now: start)
        for failed in [false, false, false, true, true] { #expect(mixed.record(failed: failed, at: start) == .unchanged) }
        #expect(mixed.record(failed: true, at: start) == .tripped)
        #expect(mixed.failuresInWindow == 3 && mixed.outcomesInWindow == 6)
    }

    @Test func oldOutcomesLeaveTheWindow() {
        let breaker = CircuitBreaker(policy: policy, now: start)
        for failed in [true, true, false, false, false, false, false, false] { _ = breaker.record(failed: failed, at: start) }
        #expect(breaker.failuresInWindow == 0, "both failures slid out of the last 6")
        #expect(breaker.outcomesInWindow == 6)
        #expect(breaker.isHealthy)
        #expect(breaker.record(failed: true, at: start) == .unchanged)
        #expect(breaker.record(failed: true, at: start) == .unchanged)
        #expect(breaker.record(failed: true, at: start) == .tripped)
        #expect(!breaker.isHealthy)
    }

    @Test func openRefusesUntilTheCoolDownThenProbesOneItemAtATime() {
        let breaker = CircuitBreaker(policy: policy, now: start)
        #expect(breaker.open(at: start) == .seconds(10))
        #expect(!breaker.admits(holding: 0))
        #expect(!breaker.expire(at: start + .seconds(9)))
        #expect(breaker.isOpen)
        #expect(breaker.expire(at: start + .seconds(10)))
        #expect(breaker.state == .probing)
        #expect(breaker.admits(holding: 0))
        #expect(!breaker.admits(holding: 1), "one probe at a time")
        #expect(breaker.room(8) == 1)
    }

    @Test func aFailedProbeDoublesTheCoolDownUpToTenTimesTheFirst() {
        let breaker = CircuitBreaker(policy: policy, now: start)
        var now = start
        _ = breaker.open(at: now)
        var cooldowns: [Duration] = []
        for _ in 0..<6 {
            now += .seconds(1000)
            #expect(breaker.expire(at: now))
            if case .reopened(let cooldown) = breaker.record(failed: true, at: now) { cooldowns.append(cooldown) }
        }
        #expect(cooldowns == [.seconds(20), .seconds(40), .seconds(80), .seconds(100), .seconds(100), .seconds(100)])
        #expect(breaker.state == .open(until: now + .seconds(100)))
        // An outcome of an item sent before it opened changes nothing.
        #expect(breaker.record(failed: false, at: now) == .unchanged)
        #expect(breaker.isOpen)
    }

    @Test func aSuccessfulProbeClosesAndTheNextQuarantineStartsFromTheFirstCoolDown() {
        let breaker = CircuitBreaker(policy: policy, now: start)
        _ = breaker.open(at: start)
        #expect(breaker.expire(at: start + .seconds(10)))
        #expect(breaker.record(failed: true, at: start + .seconds(10)) == .reopened(cooldown: .seconds(20)))
        #expect(breaker.expire(at: start + .seconds(30)))
        #expect(breaker.record(failed: false, at: start + .seconds(30)) == .closed)
        #expect(breaker.state == .closed)
        #expect(breaker.outcomesInWindow == 0, "a closed breaker weighs only what follows")
        #expect(breaker.admits(holding: 5) && breaker.room(8) == 8)
        #expect(breaker.open(at: start + .seconds(40)) == .seconds(10))
    }
}
