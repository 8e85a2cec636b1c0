// The state a journal describes: id ranges, replaying records, and snapshots that rebuild the same state.

import Testing
@testable import LANCompute

@Suite struct JournalStateTests {
    @Test func rangesMergeInAnyOrder() {
        var ranges = IDRanges()
        for id: UInt64 in [5, 3, 4, 10, 0, 1, 2, 11, 9] { ranges.insert(id) }
        #expect(ranges.ranges == [0...5, 9...11])
        #expect(ranges.count == 9)
        #expect(ranges.contains(4) && ranges.contains(9) && !ranges.contains(6) && !ranges.contains(12))
        ranges.insert(6...8)
        #expect(ranges.ranges == [0...11])
        ranges.insert(UInt64.max)
        ranges.insert(20...30)
        #expect(ranges.ranges == [0...11, 20...30, UInt64.max...UInt64.max])
        ranges.insert(12...(UInt64.max - 1))
        #expect(ranges.ranges == [0...UInt64.max])
    }

    @Test func aMillionIdsFinishedInOrderAreOneRange() {
        var ranges = IDRanges()
        for id in 0..<UInt64(1_000_000) { ranges.insert(id) }
        #expect(ranges.ranges == [0...999_999])
    }

    @Test func replayTracksFinishedSettledAndUnfinishedPayloads() {
        var state = JournalState()
        state.apply(.run(RunIdentity(epoch: 1, topologyHash: "h", source: "s")))
        state.apply(.accepted(firstID: 0, payloads: [[0], [1], [2]]))
        state.apply(.settled(.inSink, entries: [SettledEntry(id: 100, root: 0), SettledEntry(id: 101, root: 1)], sinkLength: 42))
        state.apply(.settled(.deadLettered, entries: [SettledEntry(id: 102, root: 1)], sinkLength: nil))
        state.apply(.finished(roots: [0]))
        #expect(state.finished.ranges == [0...0])
        #expect(state.settledIDs == [101, 102], "the settled items of an unfinished source item, not of a finished one")
        #expect(state.unfinishedPayloads == [1: [1], 2: [2]])
        #expect(state.sinkLength == 42)
        #expect(state.nextSourceID == 3)
        state.apply(.run(RunIdentity(epoch: 2, topologyHash: "h", source: "s")))
        #expect(state.runs == 2)
        #expect(state.identity?.epoch == 1, "the journal's identity is its first run's")
    }

    @Test func aSnapshotRebuildsTheSameState() {
        var state = JournalState()
        state.apply(.run(RunIdentity(epoch: 1, topologyHash: "h", source: "s")))
        state.apply(.accepted(firstID: 0, payloads: (0..<10).map { [UInt8($0)] }))
        state.apply(.settled(.inSink, entries: [SettledEntry(id: 50, root: 3), SettledEntry(id: 51, root: 4)], sinkLength: 7))
        state.apply(.settled(.admitted, entries: [SettledEntry(id: 52, root: 5)], sinkLength: nil))
        state.apply(.settled(.deadLettered, entries: [SettledEntry(id: 53, root: 5)], sinkLength: nil))
        state.apply(.finished(roots: [0, 1, 2, 4, 8]))
        state.apply(.intake(IntakeEntry(producer: Array(repeating: 7, count: 16), sequence: 3, accepted: 10, deadLettered: [])))
        state.apply(.run(RunIdentity(epoch: 2, topologyHash: "h", source: "s")))
        var rebuilt = JournalState()
        for record in state.snapshotRecords { rebuilt.apply(record) }
        #expect(rebuilt == state)
        #expect(rebuilt.settledIDs == [50, 52, 53])
        #expect(rebuilt.unfinishedPayloads.keys.sorted() == [3, 5, 6, 7, 9])
    }

    /// A source item that settles itself (its own root) is kept apart from the descendants of other
    /// source items: it must still be skipped on resume while unfinished, and be forgotten when it
    /// finishes, also after a snapshot.
    @Test func sourceItemsThatSettleThemselvesAreSkippedUntilFinished() {
        var state = JournalState()
        state.apply(.run(RunIdentity(epoch: 1, topologyHash: "h", source: "s")))
        state.apply(.settled(.admitted, entries: [SettledEntry(id: 7, root: 7), SettledEntry(id: 8, root: 8)], sinkLength: nil))
        state.apply(.settled(.inSink, entries: [SettledEntry(id: 7, root: 7), SettledEntry(id: 90, root: 9)], sinkLength: 12))
        state.apply(.settled(.deadLettered, entries: [SettledEntry(id: 10, root: 10)], sinkLength: nil))
        #expect(state.settledIDs == [7, 8, 10, 90])
        state.apply(.finished(roots: [7, 10]))
        #expect(state.settledIDs == [8, 90], "finished source items are forgotten, whatever settled them")
        #expect(state.selfSettled == [8: .admitted])
        var rebuilt = JournalState()
        for record in state.snapshotRecords { rebuilt.apply(record) }
        #expect(rebuilt == state)
        state.apply(.settled(.inSink, entries: [SettledEntry(id: 7, root: 7)], sinkLength: nil))
        #expect(state.settledIDs == [8, 90], "an item settled again after its source item finished is not remembered")
        state.apply(.finished(roots: [8, 9]))
        #expect(state.settledIDs.isEmpty && state.selfSettled.isEmpty && state.settlements.isEmpty)
    }

    @Test func intakeBatchesAreKeptUpToTheirBoundInOrder() {
        var state = JournalState()
        let total = JournalState.intakeMemory * 2
        for sequence in 1...UInt64(total) {
            state.apply(.intake(IntakeEntry(producer: Array(repeating: 1, count: 16), sequence: sequence, accepted: 1, deadLettered: [])))
        }
        #expect(state.intakeBatches.count <= JournalState.intakeMemory + JournalState.intakeMemory / 4)
        #expect(state.intakeBatches.count >= JournalState.intakeMemory)
        #expect(state.intakeBatches.last?.sequence == UInt64(total), "the newest are the ones kept")
        let sequences = state.intakeBatches.map(\.sequence)
        #expect(sequences == sequences.sorted())
    }
}
