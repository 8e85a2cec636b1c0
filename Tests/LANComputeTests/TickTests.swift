// The core's stamps: an instant made a tick and back, differences, and microseconds that never go negative.

import Testing
@testable import LANCompute

@Suite struct TickTests {
    @Test func anInstantComesBackFromItsTick() {
        let now = ContinuousClock.now
        for offset in [Duration.zero, .nanoseconds(1), .milliseconds(1500), .seconds(-3), .seconds(86_400)] {
            let instant = now + offset
            #expect(Tick(instant).instant == instant, "offset \(offset)")
        }
    }

    @Test func differencesAndSumsMatchTheInstants() {
        let start = ContinuousClock.now
        let later = start + .microseconds(2_500_001)
        let (from, to) = (Tick(start), Tick(later))
        #expect(to - from == later - start)
        #expect(from - to == start - later)
        #expect(from + .microseconds(2_500_001) == to)
        #expect(from < to && !(to < from))
    }

    @Test func microsecondsAreWholeAndNeverNegative() {
        let start = Tick(nanoseconds: 1_000_000)
        #expect(Tick(nanoseconds: 1_001_999).microseconds(since: start) == 1, "a part of a microsecond is dropped")
        #expect(Tick(nanoseconds: 3_000_000).microseconds(since: start) == 2_000)
        #expect(start.microseconds(since: start) == 0)
        #expect(Tick(nanoseconds: 0).microseconds(since: start) == 0, "an earlier tick counts as zero, not a wrapped count")
    }
}
