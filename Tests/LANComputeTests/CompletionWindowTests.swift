// Checks the aggregator's record of written ids: duplicates refused everywhere, bytes bounded by gaps.

import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(2))) struct CompletionWindowTests {
    @Test func duplicatesAreRefusedBelowInsideAndAboveTheGaps() {
        var window = CompletionWindow()
        for position: UInt64 in [0, 1, 2, 5, 6, 9] { #expect(window.insert(position).inserted) }
        #expect(window.runCount == 3)  // [0,3) [5,7) [9,10)
        // Every recorded id is refused again: at the low edge, inside runs, at run ends, at the top.
        for position: UInt64 in [0, 1, 2, 5, 6, 9] { #expect(!window.insert(position).inserted) }
        // Ids in the gaps and past the top are new.
        for position: UInt64 in [3, 4, 7, 8, 10] { #expect(!window.contains(position)) }
        #expect(window.insert(4).inserted)  // extends [5,7) down
        #expect(window.insert(3).inserted)  // closes the gap: [0,7)
        #expect(window.runCount == 2)
        #expect(window.insert(8).inserted)  // extends [9,10) down
        #expect(window.insert(7).inserted)  // one run again
        #expect(window.runCount == 1)
        for position: UInt64 in 0...9 { #expect(!window.insert(position).inserted) }
        #expect(window.insert(10).inserted)
        #expect(window.count == 11)
    }

    @Test func hashedAndClientIdsAreKeptExactly() {
        var window = CompletionWindow()
        let derived = (0..<1000).map { ItemID.derived(parent: UInt64($0), stageIndex: 1, outputIndex: 0) }
        let client = (1...10).map { (UInt64(1) << 63) | UInt64($0) }
        for id in derived + client { #expect(window.insert(id).inserted) }
        for id in derived + client { #expect(!window.insert(id).inserted) }
        #expect(window.insert(CompletionWindow.positionLimit).inserted)  // the first id past the runs
        #expect(window.insert(CompletionWindow.positionLimit - 1).inserted)  // the last id in them
        #expect(!window.contains(CompletionWindow.positionLimit - 2))
        #expect(window.count == 1012)
    }

    /// Position `index` of a stream that completes out of order within blocks of `block`
    /// (a fixed permutation per block, as items finish on many workers at once).
    static func scrambled(_ index: UInt64, block: UInt64) -> UInt64 {
        let base = index - index % block
        return base + (index % block &* 7919) % block  // 7919 is prime, so this permutes each block
    }

    @Test func tenMillionPositionsHoldBoundedBytes() {
        var window = CompletionWindow()
        let total: UInt64 = 10_000_000
        var peak = 0
        var refused = 0
        for index in 0..<total {
            let position = Self.scrambled(index, block: 1000)
            if !window.insert(position).inserted { refused += 1 }
            // A redelivery of something written a while ago, across the low edge: refused.
            if index % 4096 == 0, index > 5000, window.insert(position - 5000).inserted { refused -= 1_000_000 }
            if index % 10_000 == 0 { peak = max(peak, window.retainedBytes) }
        }
        #expect(refused == 0)
        #expect(window.count == Int(total))
        #expect(window.runCount == 1)
        // At most ~500 gaps of 16 bytes at any time (with array growth), whatever the total;
        // a Set<UInt64> of ten million ids holds over 150 MB.
        #expect(peak <= 32 * 1024, "peak \(peak) bytes")
        #expect(window.retainedBytes <= 32 * 1024)
    }

    @Test func itemsThatNeverArriveCostOneRunEach() {
        var window = CompletionWindow()
        // A million positions, one in every 10,000 dead-lettered (never written).
        for position: UInt64 in 0..<1_000_000 where position % 10_000 != 5 { window.insert(position) }
        #expect(window.runCount == 101)
        #expect(window.retainedBytes <= 101 * 16 * 2)
        for position: UInt64 in stride(from: 5, to: 1_000_000, by: 10_000) { #expect(!window.contains(position)) }
        #expect(!window.insert(999_999).inserted)
    }
}
