// The id-keyed table on every item's path: it must agree with a Dictionary whatever ids come and go.

import Testing
@testable import LANCompute

@Suite struct IDTableTests {
    /// A small deterministic generator, so a failure names a sequence that can be replayed.
    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func insertReplaceAndRemove() {
        var table = IDTable<String>()
        #expect(table.isEmpty)
        table[7] = "seven"
        table[0] = "zero"
        table[UInt64.max] = "max"
        table[7] = "SEVEN"
        #expect(table.count == 3)
        #expect(table[7] == "SEVEN" && table[0] == "zero" && table[UInt64.max] == "max")
        #expect(table[8] == nil && !table.contains(8))
        let removed = table.removeValue(forKey: 7)
        let again = table.removeValue(forKey: 7)
        #expect(removed == "SEVEN" && again == nil)
        table[0] = nil
        #expect(table.count == 1 && table[UInt64.max] == "max")
        table.removeAll()
        #expect(table.isEmpty && table[UInt64.max] == nil)
    }

    /// Sequential ids (source positions), ids that share their low or high bits, and random ids, in
    /// a long run of inserts and removals: every lookup agrees with a Dictionary, and so do the entries.
    @Test(arguments: ["sequential", "strided low bits", "strided high bits", "random"])
    func agreesWithADictionary(ids kind: String) {
        var generator = SplitMix(state: 42)
        func id(_ index: UInt64) -> UInt64 {
            switch kind {
            case "sequential": index
            case "strided low bits": index << 20
            case "strided high bits": index << 48 | 5
            default: generator.next() % 50_000
            }
        }
        var table = IDTable<UInt64>()
        var reference: [UInt64: UInt64] = [:]
        var live: [UInt64] = []
        for step in 0..<40_000 as Range<UInt64> {
            // Mostly inserts at first, then as many removals: the table grows, then shrinks to few.
            let removing = live.count > 0 && (generator.next() % 100) < (step < 20_000 ? 35 : 65)
            if removing {
                let position = Int(generator.next() % UInt64(live.count))
                live.swapAt(position, live.count - 1)
                let key = live.removeLast()
                let removed = table.removeValue(forKey: key)
                #expect(removed == reference.removeValue(forKey: key))
            } else {
                let key = id(step)
                if reference[key] == nil { live.append(key) }
                table[key] = step
                reference[key] = step
            }
            if step % 997 == 0 {
                #expect(table.count == reference.count)
                for key in live.prefix(200) { #expect(table[key] == reference[key]) }
                #expect(table[UInt64.max - step] == reference[UInt64.max - step])
            }
        }
        #expect(table.count == reference.count)
        for (key, value) in reference { #expect(table[key] == value) }
        let entries = table.entries
        #expect(entries.count == reference.count)
        #expect(Dictionary(uniqueKeysWithValues: entries.map { ($0.id, $0.value) }) == reference)
    }

    @Test func idSetCountsMembersOnce() {
        var set = IDSet()
        set.formUnion([1, 2, 3, 2])
        #expect(set.count == 3 && set.contains(2))
        let removed = set.remove(2)
        let again = set.remove(2)
        #expect(removed && !again)
        #expect(set.count == 2 && !set.contains(2) && !set.isEmpty)
    }
}
