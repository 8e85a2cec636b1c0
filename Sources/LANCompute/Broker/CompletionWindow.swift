// The aggregator's record of which final item ids are in the sink: exact, and compact for source positions.

/// The ids whose outputs the aggregator has written, so that a redelivered item is written once.
///
/// Why a redelivered output can never be written twice: the aggregator writes an outcome's
/// outputs only when `insert` says its id is new, and `insert` records the id before it answers.
/// The record is exact in both directions, for the life of the run: it never forgets an id
/// (nothing is evicted, however old), so a second copy, arriving whenever it does, is refused;
/// and it never reports an id it was not given, so no first copy is refused. A window that
/// forgot ids below some edge would not do: a worker that was cut off (its items redelivered
/// elsewhere) can PUSH its stale copy long after the others, and nothing fences it out.
///
/// What keeps it bounded is the shape of the ids, not forgetting. An id below `positionLimit`
/// is held in `runs`, sorted disjoint ranges of consecutive ids: a source position (the id of
/// an item of a one-stage topology, `ItemID.source`) joins the range below or above it, and a
/// range that closes a gap merges with its neighbour. Positions complete nearly in order, so
/// the runs collapse into one range [0, low-water mark) plus one range per gap above it:
/// 16 bytes per gap, where a gap is an item still in flight or queued behind later ones, or one
/// that never reaches the sink (dead-lettered). 10 million positions written a thousand out of
/// order at a time hold under 32 KiB, where a `Set<UInt64>` held over 300 MiB (34 bytes an id).
///
/// Any other id (`ItemID.derived` hashes, which final items of a multi-stage topology carry) is
/// kept in a plain set, tens of bytes each: a hash says nothing about its neighbours, and the
/// aggregator cannot tell when every descendant of a source item has arrived. Bounding those
/// too needs the item's source position on the wire, and the broker's word that a source item
/// has no descendants left (Docs/architecture.md, "Exactly once in the sink").
///
/// Same calls as a `Set<UInt64>`'s, so it can stand where one stood.
struct CompletionWindow {
    /// Ids below this are kept as runs (source positions: a trillion items). A derived hash falls
    /// below it with probability 2^-24; it is then a run of one, still exact.
    static let positionLimit: UInt64 = 1 << 40

    /// Recorded ids below `positionLimit`: sorted, disjoint, and never adjacent (adjacent runs merge).
    private var runs: [Range<UInt64>] = []
    /// Recorded ids at or above `positionLimit`.
    private var scattered: Set<UInt64> = []
    /// How many distinct ids are recorded.
    private(set) var count = 0

    /// Records `id`; `inserted` is false when it was recorded already (its outputs are in the sink).
    @discardableResult
    mutating func insert(_ id: UInt64) -> (inserted: Bool, memberAfterInsert: UInt64) {
        let inserted = id < Self.positionLimit ? insertPosition(id) : scattered.insert(id).inserted
        if inserted { count += 1 }
        return (inserted, id)
    }

    func contains(_ id: UInt64) -> Bool {
        guard id < Self.positionLimit else { return scattered.contains(id) }
        let index = firstRun(endingAtOrAfter: id)
        return index < runs.count && runs[index].contains(id)
    }

    /// Heap bytes held by the record (capacity, not just what is used), for tests and metrics.
    var retainedBytes: Int {
        // A Set's storage: one word per bucket plus one bit of occupancy map per bucket.
        runs.capacity * MemoryLayout<Range<UInt64>>.stride + scattered.capacity * (MemoryLayout<UInt64>.stride + 1)
    }

    /// How many runs hold the positions: one per gap, plus one.
    var runCount: Int { runs.count }

    private mutating func insertPosition(_ position: UInt64) -> Bool {
        // The common case first: the next position after the highest one.
        if let last = runs.last {
            if last.upperBound == position {
                runs[runs.count - 1] = last.lowerBound..<position + 1
                return true
            }
            if last.contains(position) { return false }
        }
        let index = firstRun(endingAtOrAfter: position)
        if index < runs.count {
            let run = runs[index]
            if run.contains(position) { return false }
            if run.upperBound == position {
                // Extends this run up; it may now touch the next one.
                if index + 1 < runs.count, runs[index + 1].lowerBound == position + 1 {
                    runs[index] = run.lowerBound..<runs[index + 1].upperBound
                    runs.remove(at: index + 1)
                } else {
                    runs[index] = run.lowerBound..<position + 1
                }
                return true
            }
            if run.lowerBound == position + 1 {
                // Extends this run down; the run before ends below `position`, or it would have been found.
                runs[index] = position..<run.upperBound
                return true
            }
        }
        runs.insert(position..<position + 1, at: index)
        return true
    }

    /// The index of the first run whose upper bound is at or above `position` (`runs.count` if none).
    private func firstRun(endingAtOrAfter position: UInt64) -> Int {
        var low = 0
        var high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].upperBound < position { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
