// The intake ledger without sockets: new, duplicate and out-of-window batches, and forgetting producers.

import Testing
@testable import LANCompute

@Suite struct IntakeLedgerTests {
    let alice = IntakeProducerID(bytes: Array(repeating: 1, count: 16))!
    let bob = IntakeProducerID(bytes: Array(repeating: 2, count: 16))!

    func outcome(_ accepted: Int, dead: [Int] = []) -> IntakeLedger.Outcome { .init(accepted: accepted, deadLettered: dead) }

    @Test func aResendIsADuplicateWithTheFirstOutcome() {
        var ledger = IntakeLedger(window: 4, producerCapacity: 8)
        #expect(ledger.verdict(producer: alice, sequence: 1) == .new)
        ledger.record(producer: alice, sequence: 1, outcome: outcome(9, dead: [3]))
        #expect(ledger.verdict(producer: alice, sequence: 1) == .duplicate(outcome(9, dead: [3])))
        #expect(ledger.verdict(producer: alice, sequence: 2) == .new)
        // Another producer's numbers are its own.
        #expect(ledger.verdict(producer: bob, sequence: 1) == .new)
    }

    @Test func batchesAcceptedOutOfOrderAreRememberedUntilTheGapCloses() {
        var ledger = IntakeLedger(window: 4, producerCapacity: 8)
        ledger.record(producer: alice, sequence: 1, outcome: outcome(1))
        ledger.record(producer: alice, sequence: 3, outcome: outcome(3))
        #expect(ledger.verdict(producer: alice, sequence: 3) == .duplicate(outcome(3)))
        #expect(ledger.verdict(producer: alice, sequence: 2) == .new)
        ledger.record(producer: alice, sequence: 2, outcome: outcome(2))
        for sequence: UInt64 in 1...3 { #expect(ledger.verdict(producer: alice, sequence: sequence) == .duplicate(outcome(Int(sequence)))) }
        #expect(ledger.verdict(producer: alice, sequence: 4) == .new)
    }

    @Test func aBatchBeyondTheWindowIsRefusedUntilEarlierOnesAreAccepted() {
        var ledger = IntakeLedger(window: 4, producerCapacity: 8)
        ledger.record(producer: alice, sequence: 1, outcome: outcome(1))
        #expect(ledger.verdict(producer: alice, sequence: 5) == .new)
        #expect(ledger.verdict(producer: alice, sequence: 6) == .aheadOfWindow(highestAcceptable: 5))
        ledger.record(producer: alice, sequence: 2, outcome: outcome(1))
        #expect(ledger.verdict(producer: alice, sequence: 6) == .new)
    }

    @Test func outcomesOlderThanTheWindowAreForgottenButStillDuplicates() {
        var ledger = IntakeLedger(window: 4, producerCapacity: 8)
        for sequence: UInt64 in 1...20 { ledger.record(producer: alice, sequence: sequence, outcome: outcome(Int(sequence))) }
        #expect(ledger.verdict(producer: alice, sequence: 1) == .duplicate(nil))
        #expect(ledger.verdict(producer: alice, sequence: 16) == .duplicate(nil))
        #expect(ledger.verdict(producer: alice, sequence: 17) == .duplicate(outcome(17)))
        #expect(ledger.verdict(producer: alice, sequence: 20) == .duplicate(outcome(20)))
        #expect(ledger.verdict(producer: alice, sequence: 21) == .new)
    }

    @Test func theProducerHeardFromLeastRecentlyIsForgottenFirst() {
        var ledger = IntakeLedger(window: 4, producerCapacity: 2)
        let carol = IntakeProducerID(bytes: Array(repeating: 3, count: 16))!
        ledger.record(producer: alice, sequence: 1, outcome: outcome(1))
        ledger.record(producer: bob, sequence: 1, outcome: outcome(1))
        _ = ledger.verdict(producer: alice, sequence: 2)  // alice is heard from again: bob is now the oldest
        ledger.record(producer: carol, sequence: 1, outcome: outcome(1))
        #expect(ledger.producerCount == 2)
        #expect(ledger.forgotten == 1)
        #expect(ledger.verdict(producer: alice, sequence: 1) == .duplicate(outcome(1)))
        // The documented consequence: a forgotten producer's resend is new again.
        #expect(ledger.verdict(producer: bob, sequence: 1) == .new)
    }
}
