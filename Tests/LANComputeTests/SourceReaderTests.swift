// The synthetic items of a `generate` source: the same bytes for the same index and size, whatever the code that writes them.

import Testing
@testable import LANCompute

struct SourceReaderTests {
    /// The definition, one letter at a time: what a resumed run and the sink files of earlier runs expect.
    private static func definition(index: Int, size: Int) -> [UInt8] {
        var bytes = Array("item-\(index)-".utf8)
        if bytes.count > size { return Array(bytes.prefix(size)) }
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var position = UInt(index)
        while bytes.count < size {
            bytes.append(letters[Int(position % 26)])
            position = position &* 31 &+ 7
        }
        return bytes
    }

    @Test(arguments: [0, 1, 7, 9, 10, 99, 12_345, 999_999, Int(Int32.max), Int.max])
    func generatedItemsFollowTheDefinition(index: Int) {
        // Sizes below, at and past the prefix, and the sizes the benchmarks use.
        for size in Array(0...50) + [99, 100, 101, 102, 103, 1023, 1024, 1025] {
            #expect(SourceReader.generated(index: index, size: size) == Self.definition(index: index, size: size),
                    "index \(index), size \(size)")
        }
    }

    @Test func aKnownItem() {
        #expect(String(decoding: SourceReader.generated(index: 3, size: 16), as: UTF8.self) == "item-3-dwnudwnud")
    }
}
