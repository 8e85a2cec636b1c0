// A hash table keyed by item id: what the broker, the aggregator and a worker look up for every item.

/// Values keyed by a 64-bit item id, in open addressing with linear probing.
///
/// Every item's path looks its id up a few times (sent, answered, offered, acknowledged), and a
/// `Dictionary` hashes each lookup with the seeded SipHash of `Hasher`: some 5% of the broker
/// thread. An id is spread over the table by one multiplication (Fibonacci hashing), which scatters
/// sequential source positions and already-mixed derived ids alike. The id is first mixed with a
/// random seed of the table's own, so a peer that chooses ids (the aggregator files outputs under
/// the ids a worker sends) cannot aim them at one run of slots. The table stays at most half full,
/// and a removal shifts the entries after it back instead of leaving a tombstone, so probes stay
/// short however many items come and go.
///
/// Iteration order is unspecified, as a `Dictionary`'s is.
struct IDTable<Value> {
    private var keys: [UInt64]
    private var values: [Value?]
    /// `64 - log2(capacity)`: the top bits of the product pick the home slot.
    private var shift: UInt64
    private let seed = UInt64.random(in: .min ... .max)
    private(set) var count = 0

    init() {
        keys = Array(repeating: 0, count: 16)
        values = Array(repeating: nil, count: 16)
        shift = 60
    }

    var isEmpty: Bool { count == 0 }

    private var mask: Int { keys.count - 1 }

    @inline(__always)
    private func home(_ id: UInt64) -> Int {
        Int(truncatingIfNeeded: ((id ^ seed) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot holding `id`, if it is in the table.
    @inline(__always)
    private func slot(of id: UInt64) -> Int? {
        var slot = home(id)
        while values[slot] != nil {
            if keys[slot] == id { return slot }
            slot = (slot + 1) & mask
        }
        return nil
    }

    subscript(id: UInt64) -> Value? {
        get { slot(of: id).flatMap { values[$0] } }
        set {
            if let newValue { insert(newValue, for: id) } else { removeValue(forKey: id) }
        }
    }

    func contains(_ id: UInt64) -> Bool { slot(of: id) != nil }

    private mutating func insert(_ value: Value, for id: UInt64) {
        var slot = home(id)
        while values[slot] != nil {
            if keys[slot] == id {
                values[slot] = value
                return
            }
            slot = (slot + 1) & mask
        }
        if 2 * (count + 1) > keys.count {
            grow()
            insert(value, for: id)
            return
        }
        keys[slot] = id
        values[slot] = value
        count += 1
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        let capacity = keys.count * 2
        keys = Array(repeating: 0, count: capacity)
        values = Array(repeating: nil, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        count = 0
        for index in oldKeys.indices {
            if let value = oldValues[index] { insert(value, for: oldKeys[index]) }
        }
    }

    /// Removes the value for `id` and returns it; nil when it was not there.
    @discardableResult
    mutating func removeValue(forKey id: UInt64) -> Value? {
        guard var hole = slot(of: id) else { return nil }
        let removed = values[hole]
        // Backward shift: each entry after the hole, up to the first empty slot, moves into the hole
        // unless its home lies cyclically after the hole (then the hole does not break its probe run).
        var next = (hole + 1) & mask
        while values[next] != nil {
            let wanted = home(keys[next])
            let staysPut = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next)
            if !staysPut {
                keys[hole] = keys[next]
                values[hole] = values[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        values[hole] = nil
        count -= 1
        return removed
    }

    mutating func removeAll() {
        self = IDTable()
    }

    /// The entries, as a snapshot: the table may be changed while walking it.
    var entries: [(id: UInt64, value: Value)] {
        var entries: [(id: UInt64, value: Value)] = []
        entries.reserveCapacity(count)
        for index in keys.indices {
            if let value = values[index] { entries.append((keys[index], value)) }
        }
        return entries
    }

    /// The values, in no particular order.
    var allValues: [Value] { entries.map(\.value) }
}

/// A set of item ids on ``IDTable``: a worker's held items.
struct IDSet {
    private var table = IDTable<Void>()

    var count: Int { table.count }
    var isEmpty: Bool { table.isEmpty }

    func contains(_ id: UInt64) -> Bool { table.contains(id) }

    mutating func formUnion(_ ids: some Sequence<UInt64>) {
        for id in ids { table[id] = () }
    }

    /// Removes `id`; whether it was there.
    @discardableResult
    mutating func remove(_ id: UInt64) -> Bool { table.removeValue(forKey: id) != nil }
}
