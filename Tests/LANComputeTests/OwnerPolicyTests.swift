// The owner policy's pure parts: /proc parsing, the load that is not the worker's, and the yield/resume hysteresis.

import Foundation
import Testing
@testable import LANCompute

@Suite struct OwnerPolicyTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    @Test func theBusyTicksOfProcStatLeaveOutIdleAndIOWait() {
        let stat = """
            cpu  100 20 30 5000 70 8 9 4 50 0
            cpu0 50 10 15 2500 35 4 4 2 25 0
            intr 12345
            """
        // user + nice + system + irq + softirq + steal; guest (50) is inside user already.
        #expect(ProcCPU.machineBusyTicks(procStat: stat) == 100 + 20 + 30 + 8 + 9 + 4)
        #expect(ProcCPU.machineBusyTicks(procStat: "cpu0 1 2 3 4 5 6 7 8\n") == nil)
        #expect(ProcCPU.machineBusyTicks(procStat: "cpu  1 2 x 4 5 6 7 8\n") == nil)
        #expect(ProcCPU.machineBusyTicks(procStat: "cpu  1 2 3\n") == nil)
    }

    @Test func aProcessLineIsReadFromAfterItsNameWhateverTheNameHolds() throws {
        let line = "4242 (my (odd) prog) S 17 4242 4242 0 -1 4194560 300 0 0 0 250 40 12 3 20 0 1 0 100 1000 10\n"
        let times = try #require(ProcCPU.processTimes(procPIDStat: line))
        #expect(times == ProcCPU.ProcessTimes(pid: 4242, parent: 17, ownTicks: 290, childrenTicks: 15))
        #expect(ProcCPU.processTimes(procPIDStat: "4242 (cut) S 17 1 2") == nil)
        #expect(ProcCPU.processTimes(procPIDStat: "garbage") == nil)
    }

    @Test func theWorkersTimeIsItselfAndEveryProcessBelowIt() {
        let processes = [
            ProcCPU.ProcessTimes(pid: 1, parent: 0, ownTicks: 1000, childrenTicks: 0),
            ProcCPU.ProcessTimes(pid: 10, parent: 1, ownTicks: 5, childrenTicks: 7),    // the worker
            ProcCPU.ProcessTimes(pid: 11, parent: 10, ownTicks: 20, childrenTicks: 0),  // an exec child
            ProcCPU.ProcessTimes(pid: 12, parent: 11, ownTicks: 3, childrenTicks: 1),   // its own child
            ProcCPU.ProcessTimes(pid: 13, parent: 1, ownTicks: 400, childrenTicks: 0),  // the owner's compiler
        ]
        #expect(ProcCPU.treeTicks(root: 10, processes: processes) == 5 + 7 + 20 + 3 + 1)
        #expect(ProcCPU.treeTicks(root: 99, processes: processes) == 0)
    }

    @Test func otherLoadIsTheMachinesBusyTimeLessTheWorkersPerSecond() {
        let earlier = CPUTimes(machineBusy: 100, own: 10)
        // 3 s of CPU in 2 s, 1 s of it the worker's: the rest of the machine kept one core busy.
        #expect(CPUTimes(machineBusy: 103, own: 11).otherLoad(since: earlier, elapsed: .seconds(2)) == 1)
        #expect(CPUTimes(machineBusy: 100.5, own: 10.6).otherLoad(since: earlier, elapsed: .seconds(1)) == 0)
        #expect(CPUTimes(machineBusy: 103, own: 11).otherLoad(since: earlier, elapsed: .zero) == 0)
    }

    @Test func itYieldsOnlyAfterTheLoadStaysAboveTheThreshold() {
        var policy = OwnerPolicy(threshold: 1, yieldAfter: .seconds(3), resumeAfter: .seconds(10))
        #expect(policy.observe(otherLoad: 1.8, at: at(0)) == nil)
        #expect(policy.observe(otherLoad: 1.8, at: at(1)) == nil)
        // A dip starts the count again: a burst is not the owner at work.
        #expect(policy.observe(otherLoad: 0.2, at: at(2)) == nil)
        #expect(policy.observe(otherLoad: 1.8, at: at(3)) == nil)
        #expect(policy.observe(otherLoad: 1.0, at: at(4)) == nil, "at the threshold is not above it")
        #expect(policy.observe(otherLoad: 1.5, at: at(5)) == nil)
        #expect(policy.observe(otherLoad: 1.5, at: at(7)) == nil)
        #expect(!policy.isYielding)
        #expect(policy.observe(otherLoad: 1.5, at: at(8)) == .yield)
        #expect(policy.isYielding)
        #expect(policy.observe(otherLoad: 1.9, at: at(9)) == nil)
    }

    @Test func itResumesOnlyAfterTheLoadStaysBelowTheThresholdForLonger() {
        var policy = OwnerPolicy(threshold: 1, yieldAfter: .seconds(1), resumeAfter: .seconds(10))
        _ = policy.observe(otherLoad: 2, at: at(0))
        #expect(policy.observe(otherLoad: 2, at: at(1)) == .yield)
        #expect(policy.observe(otherLoad: 0.1, at: at(2)) == nil)
        #expect(policy.observe(otherLoad: 0.1, at: at(8)) == nil)
        // The owner's next compile within the window: still yielding, and the calm starts over.
        #expect(policy.observe(otherLoad: 1.6, at: at(9)) == nil)
        #expect(policy.observe(otherLoad: 1.0, at: at(10)) == nil)
        #expect(policy.observe(otherLoad: 0.5, at: at(19)) == nil)
        #expect(policy.isYielding)
        #expect(policy.observe(otherLoad: 0.5, at: at(20)) == .resume)
        #expect(!policy.isYielding)
    }

    @Test func theReaderGivesCountersThatOnlyGrow() throws {
        #if os(Linux)
        let first = try #require(CPUTimesReader().read())
        var spin = 0.0
        for value in 0..<2_000_000 { spin += Double(value).squareRoot() }
        let second = try #require(CPUTimesReader().read())
        #expect(spin > 0)
        #expect(second.machineBusy >= first.machineBusy)
        #expect(second.own >= first.own)
        #expect(second.own <= second.machineBusy)
        #endif
    }
}
