// A stage's queue of waiting items: priorities, first in first out within one, and plain items kept compactly.

/// The items waiting at one stage for a worker: higher priority first, first in, first out
/// within one priority, retries and items put back at the front of theirs.
///
/// Queued items are most of the broker's memory when a queue is long, and most of them are
/// plain: first attempt, no deadline, key, client or error. Beyond ``compactAfter`` items, such
/// an item with a payload of at most ``compactPayloadLimit`` bytes is not kept as a
/// ``BrokerItem`` and its own payload array, but as its id (and root, and birth time when those
/// differ from its id and queueing time) in arrays of a ``CompactRun``, its payload appended to
/// that run's one byte buffer. It becomes a ``BrokerItem`` again when it leaves the queue, with
/// the same fields it went in with. Every other item is kept as its object. Runs of both kinds
/// follow each other in one order per priority, so the order of dispatch is that of the items.
struct StageQueue {
    /// Items queued up to this many (all priorities) are kept as objects: short queues, as a
    /// pipeline at the default queue limit (10,000) has, spend nothing on copying payloads in and out.
    static let defaultCompactAfter = 16_384
    /// Larger payloads stay in their own arrays: their 32-byte array header is a small part of them,
    /// and copying them into a run and out again would cost more than it saves.
    static let compactPayloadLimit = 4096

    let stage: Int
    let compactAfter: Int
    /// Buckets sorted by descending priority.
    private var buckets: [Bucket] = []
    private(set) var count = 0

    init(stage: Int, compactAfter: Int = defaultCompactAfter) {
        self.stage = stage
        self.compactAfter = max(0, compactAfter)
    }

    var isEmpty: Bool { count == 0 }

    /// Whether ``append(compactly:priority:rootCounted:)`` would take the item now: a plain item with
    /// a small payload, once the queue holds ``compactAfter`` items; and, so that a queue hovering
    /// about that length does not alternate short runs of each kind, while it holds half as many
    /// after its priority's last item was kept compactly.
    func takesCompactly(_ item: BrokerItem) -> Bool {
        guard item.isPlain, item.payload.count <= Self.compactPayloadLimit, item.stage == stage else { return false }
        if count >= compactAfter { return true }
        return count >= compactAfter / 2 && buckets.first { $0.priority == item.priority }?.endsCompact == true
    }

    mutating func append(_ item: BrokerItem, priority: Int16) {
        count += 1
        bucket(priority).appendObject(item)
    }

    /// Appends a plain item (``takesCompactly(_:)``) in compact form. `rootCounted`: a mark kept with
    /// the item and handed back by ``popFirst()``, for a caller that counts an item's source item only
    /// once it leaves the queue. The broker core needs no such mark (it counts a source item only once
    /// it has other descendants than itself) and leaves it true.
    mutating func append(compactly item: BrokerItem, priority: Int16, rootCounted: Bool = true) {
        precondition(takesCompactly(item), "only a plain item with a small payload is kept compactly")
        count += 1
        bucket(priority).appendCompact(item, rootCounted: rootCounted)
    }

    /// Puts an item at the front of its priority (a retry, or a send that did not happen).
    mutating func prepend(_ item: BrokerItem, priority: Int16) {
        count += 1
        bucket(priority).prependObject(item)
    }

    /// The first item, and its mark (false only for a compact item appended with `rootCounted: false`).
    mutating func popFirst() -> (item: BrokerItem, rootCounted: Bool)? {
        for bucket in buckets where bucket.count > 0 {
            count -= 1
            return bucket.popFirst(stage: stage)
        }
        return nil
    }

    /// Removes and returns, in order, the items kept as objects for which `shouldRemove` is true.
    /// Compact items are never visited: they have no per-item state (deadline, key, attempts) to test.
    mutating func removeObjects(where shouldRemove: (BrokerItem) -> Bool) -> [BrokerItem] {
        var removed: [BrokerItem] = []
        for bucket in buckets { removed += bucket.removeObjects(where: shouldRemove) }
        count -= removed.count
        return removed
    }

    /// Every item, first to last, with its mark (as ``popFirst()``); the queue is left empty.
    mutating func drain() -> [(item: BrokerItem, rootCounted: Bool)] {
        var all: [(item: BrokerItem, rootCounted: Bool)] = []
        all.reserveCapacity(count)
        for bucket in buckets {
            while let entry = bucket.popFirst(stage: stage) { all.append(entry) }
        }
        count = 0
        return all
    }

    /// Items kept compactly now.
    var compactCount: Int { buckets.reduce(0) { $0 + $1.compactCount } }
    /// Heap bytes the compact runs hold (their arrays' capacities), to measure what a queued item costs.
    var compactHeapBytes: Int { buckets.reduce(0) { $0 + $1.compactHeapBytes } }

    private mutating func bucket(_ priority: Int16) -> Bucket {
        if let found = buckets.first(where: { $0.priority == priority }) { return found }
        let made = Bucket(priority: priority)
        buckets.insert(made, at: buckets.firstIndex { $0.priority < priority } ?? buckets.count)
        return made
    }
}

/// One priority's items: runs of objects and compact runs, in the order their items came.
/// A class: it is changed in place through the queue, never copied.
private final class Bucket {
    private enum Run {
        case objects(ObjectRun)
        case compact(CompactRun)
    }

    let priority: Int16
    private var runs = FIFOQueue<Run>()
    private(set) var count = 0
    private(set) var compactCount = 0

    init(priority: Int16) { self.priority = priority }

    /// Whether its last item was kept compactly.
    var endsCompact: Bool {
        if case .compact? = runs.last { return true }
        return false
    }

    func appendObject(_ item: BrokerItem) {
        count += 1
        if case .objects(let run)? = runs.last {
            run.items.append(item)
        } else {
            if case .compact(let previous)? = runs.last { previous.seal() }
            let run = ObjectRun()
            run.items.append(item)
            runs.append(.objects(run))
        }
    }

    func prependObject(_ item: BrokerItem) {
        count += 1
        if case .objects(let run)? = runs.first {
            run.items.prepend(item)
        } else {
            let run = ObjectRun()
            run.items.append(item)
            runs.prepend(.objects(run))
        }
    }

    func appendCompact(_ item: BrokerItem, rootCounted: Bool) {
        count += 1
        compactCount += 1
        if case .compact(let run)? = runs.last, run.hasRoom(forPayload: item.payload.count, rootCounted: rootCounted) {
            run.append(item)
            return
        }
        // A run that follows a full one is likely to fill up too: it takes its whole buffer, and room
        // for as many items as the full one, at once; any other grows as its items come.
        var reserving = 0
        if case .compact(let previous)? = runs.last {
            previous.seal()
            if previous.rootCounted == rootCounted { reserving = previous.appended }
        }
        let run = CompactRun(rootCounted: rootCounted, reservingItems: reserving)
        run.append(item)
        runs.append(.compact(run))
    }

    func popFirst(stage: Int) -> (item: BrokerItem, rootCounted: Bool)? {
        while let first = runs.first {
            switch first {
            case .objects(let run):
                if let item = run.items.popFirst() {
                    if run.items.isEmpty { _ = runs.popFirst() }
                    count -= 1
                    return (item, true)
                }
                _ = runs.popFirst()
            case .compact(let run):
                if run.count > 0 {
                    let item = run.popFirst(stage: stage, priority: priority)
                    // An emptied run goes at once: its buffer is freed, whether or not it was full.
                    if run.count == 0 { _ = runs.popFirst() }
                    count -= 1
                    compactCount -= 1
                    return (item, run.rootCounted)
                }
                _ = runs.popFirst()
            }
        }
        return nil
    }

    func removeObjects(where shouldRemove: (BrokerItem) -> Bool) -> [BrokerItem] {
        var removed: [BrokerItem] = []
        for run in runs.elements {
            if case .objects(let objects) = run { removed += objects.items.removeAll(where: shouldRemove) }
        }
        count -= removed.count
        return removed
    }

    var compactHeapBytes: Int {
        runs.elements.reduce(0) { total, run in
            if case .compact(let compact) = run { return total + compact.heapBytes }
            return total
        }
    }
}

/// Consecutive items kept as objects. A class, so the run changes in place inside its bucket.
private final class ObjectRun {
    var items = FIFOQueue<BrokerItem>()
}

/// Consecutive plain items of one stage and priority without an object each: ids in one array,
/// payloads back to back in one byte buffer of at most ``byteBudget`` bytes (ids and ends at most ``itemBudget``), the time they were
/// queued once per stretch of items queued at the same instant (items arrive in batches).
private final class CompactRun {
    /// A run is full when its next payload would take its buffer past this (256 KiB: a run's
    /// memory is freed only once every item in it has left, and its arrays stay small to allocate).
    static let byteBudget = 256 << 10
    /// And when it holds this many items (empty payloads never fill a buffer).
    static let itemBudget = 65_536

    /// The mark of all its items (``StageQueue/append(compactly:priority:rootCounted:)``): a run holds items of one mark.
    let rootCounted: Bool
    private var ids: [UInt64] = []
    /// Empty while every item's root is its own id (source items); filled from then on.
    private var roots: [UInt64] = []
    /// One past the last byte of each item's payload in `bytes`.
    private var ends: [UInt32] = []
    private var bytes: [UInt8] = []
    /// Stretches of items queued at one instant: from which index on, and when.
    private var queuedAt: [(from: Int, at: Tick)] = []
    /// Empty while every item was born when it was queued (source items); filled from then on.
    private var bornAt: [Tick] = []
    private var head = 0
    private var queuedAtCursor = 0

    init(rootCounted: Bool, reservingItems items: Int) {
        self.rootCounted = rootCounted
        if items > 0 {
            bytes.reserveCapacity(Self.byteBudget)
            ids.reserveCapacity(items)
            ends.reserveCapacity(items)
        }
    }

    /// Items still in the run.
    var count: Int { ids.count - head }
    /// Items ever appended.
    var appended: Int { ids.count }

    func hasRoom(forPayload size: Int, rootCounted: Bool) -> Bool {
        rootCounted == self.rootCounted && bytes.count + size <= Self.byteBudget && ids.count < Self.itemBudget
    }

    func append(_ item: BrokerItem) {
        let index = ids.count
        ids.append(item.id)
        if !roots.isEmpty {
            roots.append(item.root)
        } else if item.root != item.id {
            roots.reserveCapacity(ids.capacity)
            roots.append(contentsOf: ids.dropLast())
            roots.append(item.root)
        }
        bytes.append(contentsOf: item.payload)
        ends.append(UInt32(bytes.count))
        if queuedAt.last?.at != item.enqueuedAt { queuedAt.append((index, item.enqueuedAt)) }
        if !bornAt.isEmpty {
            bornAt.append(item.bornAt)
        } else if item.bornAt != item.enqueuedAt {
            bornAt.reserveCapacity(ids.capacity)
            var stretch = 0
            for earlier in 0..<index {
                while stretch + 1 < queuedAt.count && queuedAt[stretch + 1].from <= earlier { stretch += 1 }
                bornAt.append(queuedAt[stretch].at)
            }
            bornAt.append(item.bornAt)
        }
    }

    /// No more items come: the per-item arrays give back what their growth left unused, when that is much.
    func seal() {
        func shrunk<Element>(_ array: [Element]) -> [Element] {
            guard array.capacity - array.count > array.count / 8 else { return array }
            var fitted: [Element] = []
            fitted.reserveCapacity(array.count)
            fitted.append(contentsOf: array)
            return fitted
        }
        ids = shrunk(ids)
        bytes = shrunk(bytes)
        roots = shrunk(roots)
        ends = shrunk(ends)
        bornAt = shrunk(bornAt)
        queuedAt = shrunk(queuedAt)
    }

    /// The first item as a ``BrokerItem``, with the fields it was appended with.
    func popFirst(stage: Int, priority: Int16) -> BrokerItem {
        let index = head
        head += 1
        while queuedAtCursor + 1 < queuedAt.count && queuedAt[queuedAtCursor + 1].from <= index { queuedAtCursor += 1 }
        let queued = queuedAt[queuedAtCursor].at
        let start = index == 0 ? 0 : Int(ends[index - 1])
        let item = BrokerItem(id: ids[index], stage: stage, payload: Array(bytes[start..<Int(ends[index])]), enqueuedAt: queued,
                              bornAt: bornAt.isEmpty ? queued : bornAt[index], root: roots.isEmpty ? ids[index] : roots[index])
        item.priority = priority
        return item
    }

    /// Heap bytes its arrays hold.
    var heapBytes: Int {
        ids.capacity * MemoryLayout<UInt64>.stride + roots.capacity * MemoryLayout<UInt64>.stride
            + ends.capacity * MemoryLayout<UInt32>.stride + bytes.capacity
            + queuedAt.capacity * MemoryLayout<(from: Int, at: Tick)>.stride
            + bornAt.capacity * MemoryLayout<Tick>.stride
    }
}
