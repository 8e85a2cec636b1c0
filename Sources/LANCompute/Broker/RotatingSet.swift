// A set with constant-time insert and remove whose members are looked at from a cursor that moves on, so bounded looks see every member in turn.

/// Members keyed by `Key`, each with a `Value`, in an array (removal moves the last member into
/// the hole) and a dictionary of positions. A reader looks at the members from ``cursor`` on,
/// wrapping, and moves the cursor past those it looked at: looks of a bounded size then visit every
/// member in turn instead of always the same first ones.
struct RotatingSet<Key: Hashable, Value> {
    private var keys: [Key] = []
    private var values: [Value] = []
    private var positions: [Key: Int] = [:]
    /// Where the next look starts; always within the members (0 when there are none).
    private(set) var cursor = 0

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }

    func contains(_ key: Key) -> Bool { positions[key] != nil }

    /// Adds a member (last in the array); replaces the value of one already there.
    mutating func insert(_ key: Key, _ value: Value) {
        if let position = positions[key] {
            values[position] = value
            return
        }
        positions[key] = keys.count
        keys.append(key)
        values.append(value)
    }

    /// Removes a member, if there; the last member takes its place.
    mutating func remove(_ key: Key) {
        guard let position = positions.removeValue(forKey: key) else { return }
        let last = keys.count - 1
        if position != last {
            keys[position] = keys[last]
            values[position] = values[last]
            positions[keys[position]] = position
        }
        keys.removeLast()
        values.removeLast()
        if cursor >= keys.count { cursor = 0 }
    }

    /// The member `offset` places after the cursor, wrapping; `offset` must be below ``count``.
    func value(afterCursor offset: Int) -> Value {
        values[(cursor + offset) % keys.count]
    }

    /// Moves the cursor `steps` members on, wrapping.
    mutating func advanceCursor(by steps: Int) {
        guard !keys.isEmpty else { return }
        cursor = (cursor + steps) % keys.count
    }
}
