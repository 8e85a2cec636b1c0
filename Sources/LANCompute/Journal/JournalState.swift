// What a journal says about a pipeline's progress, rebuilt by replaying records and kept live while they are written.

/// A set of source ids as sorted, disjoint, non-adjacent closed ranges: a pipeline that finished
/// items 0 through 9,999,999 mostly in order holds a handful of ranges, not ten million ids.
struct IDRanges: Equatable, Sendable {
    private(set) var ranges: [ClosedRange<UInt64>] = []

    var count: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } }
    var isEmpty: Bool { ranges.isEmpty }

    /// The index of the first range whose upper bound is at least `id`.
    private func firstIndex(reaching id: UInt64) -> Int {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound < id { low = middle + 1 } else { high = middle }
        }
        return low
    }

    func contains(_ id: UInt64) -> Bool {
        let index = firstIndex(reaching: id)
        return index < ranges.count && ranges[index].lowerBound <= id
    }

    mutating func insert(_ id: UInt64) {
        // The common case, ids finishing in order: extend the last range.
        if let last = ranges.last, id >= last.lowerBound {
            if id <= last.upperBound { return }
            if id == last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...id
                return
            }
            ranges.append(id...id)
            return
        }
        insert(id...id)
    }

    mutating func insert(_ range: ClosedRange<UInt64>) {
        var lower = range.lowerBound
        var upper = range.upperBound
        // Every range that overlaps or touches [lower, upper] merges into it.
        var start = firstIndex(reaching: lower == 0 ? 0 : lower - 1)
        var end = start
        while end < ranges.count, upper == .max || ranges[end].lowerBound <= upper + 1 {
            lower = min(lower, ranges[end].lowerBound)
            upper = max(upper, ranges[end].upperBound)
            end += 1
        }
        if start > ranges.count { start = ranges.count }
        ranges.replaceSubrange(start..<end, with: [lower...upper])
    }
}

/// The state a journal describes: which source items are finished, which items of unfinished ones
/// settled already, the payloads of accepted items not yet finished, and the sink's committed length.
struct JournalState: Equatable, Sendable {
    /// The run that started the journal; a resumed run must have the same topology and source.
    var identity: RunIdentity?
    /// Runs recorded, the first included: 2 after one resume.
    var runs = 0
    var finished = IDRanges()
    /// Items that settled, grouped by the source item they descend from, for source items not finished;
    /// a source item that settled itself (its own root) is in `selfSettled` instead.
    var settledUnfinished: [UInt64: [SettledEntry]] = [:]
    var settlements: [UInt64: Settlement] = [:]
    /// Source items of a sole entry stage that settled themselves and are not finished (most often
    /// for one flush, until the finish recorded after them): one table entry each, where a grouped
    /// entry costs an array and two tables, kept on the broker thread for every item.
    var selfSettled: [UInt64: Settlement] = [:]
    /// Payloads of accepted source items not finished (sources that cannot be read again).
    var unfinishedPayloads: [UInt64: [UInt8]] = [:]
    /// The sink's length after the last acknowledged outputs; nil until the first.
    var sinkLength: UInt64?
    /// One past the highest source id seen.
    var nextSourceID: UInt64 = 0
    /// The latest acknowledged intake batches, oldest first, at most `intakeMemory`: more than the
    /// intake ledger itself remembers (1,024 producers, 256 batches above each one's contiguous number).
    var intakeBatches: [IntakeEntry] = []
    static let intakeMemory = 65_536

    mutating func apply(_ record: JournalRecord) {
        switch record {
        case .run(let identity):
            if self.identity == nil { self.identity = identity }
            runs += 1
        case .accepted(let firstID, let payloads):
            for (offset, payload) in payloads.enumerated() {
                let id = firstID + UInt64(offset)
                if !finished.contains(id) { unfinishedPayloads[id] = payload }
                nextSourceID = max(nextSourceID, id + 1)
            }
        case .settled(let settlement, let entries, let sinkLength):
            for entry in entries where !finished.contains(entry.root) {
                if entry.id == entry.root {
                    selfSettled[entry.id] = settlement
                } else {
                    settledUnfinished[entry.root, default: []].append(entry)
                    settlements[entry.id] = settlement
                }
            }
            if let sinkLength { self.sinkLength = sinkLength }
        case .finished(let roots):
            for root in roots { finish(root) }
        case .intake(let entry):
            intakeBatches.append(entry)
            // Trimmed in chunks, so appending stays cheap.
            if intakeBatches.count > Self.intakeMemory + Self.intakeMemory / 4 {
                intakeBatches.removeFirst(intakeBatches.count - Self.intakeMemory)
            }
        case .finishedRanges(let ranges):
            for range in ranges {
                finished.insert(range)
                nextSourceID = max(nextSourceID, range.upperBound &+ 1)
            }
        }
    }

    private mutating func finish(_ root: UInt64) {
        finished.insert(root)
        // The tables are often empty (no descendants, no payloads journaled): then no lookup at all.
        if !selfSettled.isEmpty { selfSettled[root] = nil }
        if !settledUnfinished.isEmpty, let entries = settledUnfinished.removeValue(forKey: root) {
            for entry in entries { settlements[entry.id] = nil }
        }
        if !unfinishedPayloads.isEmpty { unfinishedPayloads[root] = nil }
        nextSourceID = max(nextSourceID, root &+ 1)
    }

    /// Ids of items that settled while their source item is still unfinished: the core skips them
    /// when the source item is redone.
    var settledIDs: [UInt64] { (settledUnfinished.values.flatMap { $0.map(\.id) } + selfSettled.keys).sorted() }

    /// Records that rebuild this state from nothing: what a snapshot holds.
    var snapshotRecords: [JournalRecord] {
        var records: [JournalRecord] = []
        if let identity { records.append(.run(identity)) }
        if !finished.isEmpty { records.append(.finishedRanges(finished.ranges)) }
        let unfinished = unfinishedPayloads.keys.sorted()
        // One record per run of consecutive ids, at most 4096 payloads each.
        var index = 0
        while index < unfinished.count {
            var end = index + 1
            while end < unfinished.count, end - index < 4096, unfinished[end] == unfinished[end - 1] + 1 { end += 1 }
            records.append(.accepted(firstID: unfinished[index], payloads: unfinished[index..<end].map { unfinishedPayloads[$0]! }))
            index = end
        }
        var byKind = Dictionary(grouping: settledUnfinished.values.flatMap { $0 }) { settlements[$0.id] ?? .inSink }
        for (id, settlement) in selfSettled { byKind[settlement, default: []].append(SettledEntry(id: id, root: id)) }
        for kind in [Settlement.admitted, .deadLettered, .inSink] {
            let entries = (byKind[kind] ?? []).sorted { $0.id < $1.id }
            if !entries.isEmpty { records.append(.settled(kind, entries: entries, sinkLength: nil)) }
        }
        if let sinkLength { records.append(.settled(.inSink, entries: [], sinkLength: sinkLength)) }
        records += intakeBatches.map { .intake($0) }
        // The runs count is history, not state: a snapshot keeps it as one more run record per extra run.
        if let identity, runs > 1 { records += Array(repeating: .run(identity), count: runs - 1) }
        return records
    }
}
