// Adaptive credit on a manual clock: probes and echoes, the rate, growth to the bandwidth-delay product, bounds, no oscillation.

import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct CreditControllerTests {
    let start = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    /// A link with `roundTrip` ms and a worker that finishes at most `capacity` items a second,
    /// simulated in 10 ms steps for `duration` ms: each step it finishes what it can of what the
    /// broker let it hold (credit-bound: credit per round trip). Returns the credits announced, in order.
    func run(_ controller: inout CreditController, from begin: Int = 0, for duration: Int, roundTrip: Int, capacity: Double)
        -> [Int]
    {
        var announced: [Int] = []
        var pendingEcho: (token: UInt64, due: Int)?
        var carry = 0.0
        var time = begin
        while time < begin + duration {
            if let echo = pendingEcho, echo.due <= time {
                controller.echoed(echo.token, at: at(echo.due))
                pendingEcho = nil
            }
            let step = controller.advance(to: at(time))
            if let probe = step.probe { pendingEcho = (probe, time + roundTrip) }
            if let credit = step.credit { announced.append(credit) }
            // Per 10 ms: at most credit/roundTrip items (the link), at most capacity (the worker).
            carry += min(Double(controller.credit) / Double(roundTrip), capacity / 1000) * 10
            let whole = Int(carry)
            carry -= Double(whole)
            if whole > 0 { controller.finished(whole) }
            time += 10
        }
        return announced
    }

    @Test func probesAtOnceAndTakesTheSmallestEchoAsTheRoundTrip() {
        var controller = CreditController(floor: 8, slots: 2, now: at(0))
        let first = controller.advance(to: at(0))
        #expect(first.probe == 1)
        #expect(first.credit == nil)
        // Only one probe at a time.
        #expect(controller.advance(to: at(100)).probe == nil)
        controller.echoed(1, at: at(120))
        #expect(controller.roundTrip == .milliseconds(120))
        // The next probe is due one interval after the last was sent.
        #expect(controller.nextDue == at(500) || controller.nextDue < at(500))
        #expect(controller.advance(to: at(499)).probe == nil)
        let second = controller.advance(to: at(500))
        #expect(second.probe == 2)
        controller.echoed(2, at: at(900))  // queued behind items: longer, not the link
        #expect(controller.roundTrip == .milliseconds(120))
        // An echo of a token not outstanding is ignored.
        controller.echoed(7, at: at(950))
        #expect(controller.roundTrip == .milliseconds(120))
    }

    @Test func probesLessOftenOnceItHasAWindowOfEchoes() {
        var controller = CreditController(floor: 8, slots: 2, now: at(0))
        var sentAt: [Int] = []
        for time in stride(from: 0, to: 12_000, by: 10) {
            if let probe = controller.advance(to: at(time)).probe {
                sentAt.append(time)
                controller.echoed(probe, at: at(time + 5))
            }
        }
        let gaps = zip(sentAt.dropFirst(), sentAt).map { $0 - $1 }
        #expect(gaps.prefix(CreditController.rttSampleCount - 1).allSatisfy { $0 == 500 }, "\(gaps)")
        #expect(gaps.dropFirst(CreditController.rttSampleCount - 1).allSatisfy { $0 == 2000 }, "\(gaps)")
        #expect(gaps.count > CreditController.rttSampleCount)
    }

    @Test func givesUpProbingABrokerThatNeverEchoesAndKeepsTheFloor() {
        var controller = CreditController(floor: 8, slots: 2, now: at(0))
        var probes = 0
        var credits: [Int] = []
        for time in stride(from: 0, to: 20_000, by: 50) {
            let step = controller.advance(to: at(time))
            if step.probe != nil { probes += 1 }
            if let credit = step.credit { credits.append(credit) }
            controller.finished(5)
        }
        #expect(probes == CreditController.unansweredLimit)
        #expect(controller.brokerDoesNotEcho)
        #expect(credits.isEmpty)
        #expect(controller.credit == 8)
    }

    @Test func growsToTheBandwidthDelayProductOfAFastWorkerOnASlowLink() {
        // 100 ms round trip, a worker that could do 2,000 items/s: credit 8 allows 80/s.
        var controller = CreditController(floor: 8, slots: 2, now: at(0))
        let announced = run(&controller, for: 10_000, roundTrip: 100, capacity: 2000)
        #expect(!announced.isEmpty)
        // Never more than doubling per window, never below the floor.
        var previous = 8
        for credit in announced {
            #expect(credit <= previous * 2)
            #expect(credit >= 8)
            previous = credit
        }
        // Settled near rate x RTT x headroom + slots = 2,000 x 0.1 x 2 + 2 = 402 (within the 1/8 hysteresis).
        #expect(controller.credit >= 350 && controller.credit <= 460, "credit \(controller.credit), rate \(controller.rate ?? 0)")
        #expect((controller.rate ?? 0) > 1800)
    }

    @Test func settlesWithoutOscillating() {
        var controller = CreditController(floor: 8, slots: 2, now: at(0))
        _ = run(&controller, for: 10_000, roundTrip: 100, capacity: 2000)
        let settled = controller.credit
        // Another 20 s of the same link: at most one more small change, and no swing back.
        let later = run(&controller, from: 10_000, for: 20_000, roundTrip: 100, capacity: 2000)
        #expect(later.count <= 1, "\(later)")
        #expect(abs(controller.credit - settled) <= settled / 8)
    }

    @Test func staysAtTheFloorOnAFastLinkAndIsCutToTheCeiling() {
        // A LAN round trip of 1 ms: 2 x 2,000 x 0.001 + 2 = 6 is below the default 8.
        var lan = CreditController(floor: 8, slots: 2, now: at(0))
        // Announced once, unchanged, so that the broker learns the round trip; then nothing.
        #expect(run(&lan, for: 5_000, roundTrip: 1, capacity: 2000) == [8])
        #expect(lan.credit == 8)
        // A 500 ms link and a very fast worker: the ceiling holds.
        var far = CreditController(floor: 8, ceiling: 300, slots: 2, now: at(0))
        _ = run(&far, for: 20_000, roundTrip: 500, capacity: 100_000)
        #expect(far.credit == 300)
    }

    @Test func comesDownGentlyWhenTheWorkerSlowsAndHoldsStillWhenIdle() {
        var controller = CreditController(floor: 8, slots: 2, now: at(0))
        _ = run(&controller, for: 10_000, roundTrip: 100, capacity: 2000)
        let high = controller.credit
        // The worker slows to 200 items/s: target 2 x 200 x 0.1 + 2 = 42; each step a quarter of the gap.
        let lower = run(&controller, from: 10_000, for: 20_000, roundTrip: 100, capacity: 200)
        #expect(!lower.isEmpty)
        var previous = high
        for credit in lower {
            #expect(credit < previous)
            #expect(previous - credit <= (previous - 42) / 4 + 1)
            previous = credit
        }
        #expect(controller.credit >= 42 && controller.credit <= 56, "\(controller.credit)")
        // Nothing to do for 10 s: nothing finished, nothing learned, the credit stays.
        let idle = controller.credit
        for time in stride(from: 30_000, to: 40_000, by: 50) {
            let step = controller.advance(to: at(time))
            if let probe = step.probe { controller.echoed(probe, at: at(time + 10)) }
            #expect(step.credit == nil)
        }
        #expect(controller.credit == idle)
    }

    @Test func refreshCarriesProbeCreditAndRoundTripAndParsesBack() throws {
        let refresh = Capabilities.creditRefresh(probe: 12, credit: 0, roundTrip: .microseconds(101_250))
        let decoded = try Capabilities(decoding: refresh.encoded())
        #expect(decoded.probe == 12)
        #expect(decoded.refreshedCredit == 0)
        #expect(decoded.roundTrip == .microseconds(101_250))
        let message = try WorkerMessage(frames: WorkerMessage.refresh(capabilities: decoded).frames)
        #expect(message == .refresh(capabilities: decoded))
        #expect(Capabilities(["credit": "-3"]).refreshedCredit == nil)
        #expect(Capabilities(["credit": "many"]).refreshedCredit == nil)
        #expect(Capabilities.creditRefresh(probe: nil, credit: nil, roundTrip: .seconds(1)).values.isEmpty)
    }
}
