// Checks the parsing and printing of size literals.

import Testing
@testable import LANCompute

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("1024", 1024), ("0", 0), ("12B", 12), ("1KB", 1_000), ("1kb", 1_000), ("1KiB", 1_024),
        ("4GiB", 4 << 30), ("512MB", 512_000_000), ("2 MiB", 2 << 20), ("1.5GiB", 3 << 29), ("1TiB", 1 << 40),
    ])
    func parses(text: String, bytes: Int) {
        #expect(ByteSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "GiB", "4GB!", "-1", "1.5", "0.3B", "four", "4 GiB GiB", "99999999999999999999"])
    func rejects(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }

    @Test func formatsInTheLargestExactUnit() {
        #expect(ByteSize.format(0) == "0")
        #expect(ByteSize.format(1_000) == "1000")
        #expect(ByteSize.format(2_048) == "2KiB")
        #expect(ByteSize.format(4 << 30) == "4GiB")
        #expect(ByteSize.format(3 << 29) == "1536MiB")
    }
}
