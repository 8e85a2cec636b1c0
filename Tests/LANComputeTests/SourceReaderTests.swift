// The synthetic items of a `generate` source: the same bytes for the same index and size, whatever the code that writes them.

import Testing
@testable import LANCompute

struct SourceReaderTests {
    /// The definition, one letter at a time: what a resumed run expects of the items it reads again.
    /// (Builds before the cycle wrote other letters; a state they left is refused, see `BrokerJournal.sourceIdentity`.)
    /// The letters are a cycle of 251, the k-th 'a' plus p(k) modulo 26 with p(0) = 0 and
    /// p(k + 1) = p(k) x 31 + 7 (mod 2^64), entered at the index modulo 251.
    private static func definition(index: Int, size: Int) -> [UInt8] {
        var bytes = Array("item-\(index)-".utf8)
        if bytes.count > size { return Array(bytes.prefix(size)) }
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var cycle: [UInt8] = []
        var position: UInt = 0
        for _ in 0..<251 {
            cycle.append(letters[Int(position % 26)])
            position = position &* 31 &+ 7
        }
        var next = index % 251
        while bytes.count < size {
            bytes.append(cycle[next])
            next = (next + 1) % 251
        }
        return bytes
    }

    @Test(arguments: [0, 1, 7, 9, 10, 99, 250, 251, 252, 12_345, 999_999, Int(Int32.max), Int.max])
    func generatedItemsFollowTheDefinition(index: Int) {
        // Sizes below, at and past the prefix, and the sizes the benchmarks use.
        for size in Array(0...50) + [99, 100, 101, 102, 103, 250, 251, 252, 502, 1023, 1024, 1025, 4266, 4267, 4268, 10_000] {
            #expect(SourceReader.generated(index: index, size: size) == Self.definition(index: index, size: size),
                    "index \(index), size \(size)")
        }
    }

    @Test func aKnownItem() {
        #expect(String(decoding: SourceReader.generated(index: 3, size: 16), as: UTF8.self) == "item-3-jahqjahqj")
        #expect(String(decoding: SourceReader.generated(index: 251, size: 30), as: UTF8.self) == "item-251-ahqjahqjahqjahcfwlybo")
    }
}
