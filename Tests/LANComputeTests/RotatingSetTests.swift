// The set dispatch keeps of a stage's open workers: constant-time changes, and bounded looks that visit every member in turn.

import Testing
@testable import LANCompute

@Suite struct RotatingSetTests {
    /// What `looks` looks of `size` members each see, from the cursor on.
    static func look(_ set: inout RotatingSet<Int, Int>, size: Int) -> [Int] {
        let seen = (0..<min(size, set.count)).map { set.value(afterCursor: $0) }
        set.advanceCursor(by: seen.count)
        return seen
    }

    @Test func insertAndRemoveKeepEveryOtherMember() {
        var set = RotatingSet<Int, Int>()
        for member in 0..<10 { set.insert(member, member * 10) }
        set.insert(3, 33)
        #expect(set.count == 10)
        set.remove(0)
        set.remove(5)
        set.remove(42)
        #expect(set.count == 8)
        #expect(!set.contains(0) && !set.contains(5) && set.contains(9))
        #expect(Set(Self.look(&set, size: 100)) == [10, 20, 33, 40, 60, 70, 80, 90])
    }

    @Test func boundedLooksVisitEveryMemberInTurn() {
        var set = RotatingSet<Int, Int>()
        for member in 0..<10 { set.insert(member, member) }
        #expect(Self.look(&set, size: 4) == [0, 1, 2, 3])
        #expect(Self.look(&set, size: 4) == [4, 5, 6, 7])
        #expect(Self.look(&set, size: 4) == [8, 9, 0, 1], "it wraps")
        // A look as large as the set sees all of it, and leaves the cursor where it was.
        let cursor = set.cursor
        #expect(Set(Self.look(&set, size: 10)) == Set(0..<10))
        #expect(set.cursor == cursor)
    }

    @Test func removingTheLastMembersKeepsTheCursorWithinTheSet() {
        var set = RotatingSet<Int, Int>()
        for member in 0..<3 { set.insert(member, member) }
        set.advanceCursor(by: 2)
        set.remove(2)
        #expect(set.cursor < set.count)
        #expect(Self.look(&set, size: 1).count == 1)
        set.remove(0)
        set.remove(1)
        #expect(set.isEmpty && set.cursor == 0)
        set.advanceCursor(by: 5)
        #expect(set.cursor == 0)
    }
}
