// When the broker gives free heap pages back: after the queue moved far, at most once a second.

import Testing
@testable import LANCompute

@Suite struct HeapTrimTests {
    @Test func trimsOnlyAfterTheQueueMovedFarAndASecondPassed() {
        let start = ContinuousClock.now
        var trim = HeapTrim(now: start)
        let step = HeapTrim.step
        let notFarEnough = trim.check(queued: step - 1, now: start + .seconds(5))
        let tooSoon = trim.check(queued: step, now: start + .milliseconds(500))
        let due = trim.check(queued: step, now: start + .seconds(1))
        let tooSoonAgain = trim.check(queued: 2 * step, now: start + .milliseconds(1500))
        let notFarSinceLast = trim.check(queued: step + 10, now: start + .seconds(3))
        // A queue that drained counts as well as one that filled.
        let drained = trim.check(queued: 0, now: start + .seconds(3))
        #expect(!notFarEnough, "the queue has not moved far enough")
        #expect(!tooSoon, "not a second since the start")
        #expect(due)
        #expect(!tooSoonAgain, "a second has not passed since the last trim")
        #expect(!notFarSinceLast, "moved by less than a step since the last trim")
        #expect(drained)
    }
}
