// The broker core returns several actions per item: they must stay small to copy.

import Testing
@testable import LANCompute

@Suite struct BrokerActionLayoutTests {
    /// Every per-item case fits in a few words; a large payload added to a per-item case, or a
    /// rare case added without `indirect`, makes every action of every item larger.
    @Test func anActionIsAFewWordsWide() {
        #expect(MemoryLayout<BrokerAction>.size <= 40, "BrokerAction is \(MemoryLayout<BrokerAction>.size) bytes: box rare large cases with `indirect`")
    }
}
