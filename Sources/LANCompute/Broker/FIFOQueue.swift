// A first-in first-out queue with O(1) amortised push and pop, and a priority queue of them.

/// A FIFO queue backed by an array and a moving head.
struct FIFOQueue<Element> {
    private var storage: [Element] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head >= storage.count }
    /// Element slots allocated (taken ones before the head included), to measure what a queue holds.
    var allocatedSlots: Int { storage.capacity }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func prepend(_ element: Element) {
        if head > 0 {
            head -= 1
            storage[head] = element
        } else {
            storage.insert(element, at: 0)
        }
    }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    var first: Element? { head < storage.count ? storage[head] : nil }

    /// The elements, first to last.
    var elements: ArraySlice<Element> { storage[head...] }

    /// Removes and returns every element for which `shouldRemove` is true, keeping the order of the rest.
    mutating func removeAll(where shouldRemove: (Element) -> Bool) -> [Element] {
        var kept: [Element] = []
        var removed: [Element] = []
        for element in storage[head...] {
            if shouldRemove(element) { removed.append(element) } else { kept.append(element) }
        }
        storage = kept
        head = 0
        return removed
    }

    mutating func drain() -> [Element] {
        let all = Array(storage[head...])
        storage.removeAll()
        head = 0
        return all
    }
}

/// Higher priority first; first in, first out within one priority.
struct PriorityFIFO<Element> {
    /// Buckets sorted by descending priority.
    private var buckets: [(priority: Int16, queue: FIFOQueue<Element>)] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }
    /// Element slots allocated across the priorities, to measure what a queue holds.
    var allocatedSlots: Int { buckets.reduce(0) { $0 + $1.queue.allocatedSlots } }

    mutating func append(_ element: Element, priority: Int16) {
        count += 1
        if let index = buckets.firstIndex(where: { $0.priority == priority }) {
            buckets[index].queue.append(element)
            return
        }
        var queue = FIFOQueue<Element>()
        queue.append(element)
        let index = buckets.firstIndex { $0.priority < priority } ?? buckets.count
        buckets.insert((priority, queue), at: index)
    }

    /// Puts an element back at the front of its priority (after a send that did not happen).
    mutating func prepend(_ element: Element, priority: Int16) {
        count += 1
        if let index = buckets.firstIndex(where: { $0.priority == priority }) {
            buckets[index].queue.prepend(element)
            return
        }
        append(element, priority: priority)
        count -= 1
    }

    mutating func popFirst() -> Element? {
        for index in buckets.indices where !buckets[index].queue.isEmpty {
            count -= 1
            return buckets[index].queue.popFirst()
        }
        return nil
    }

    mutating func removeAll(where shouldRemove: (Element) -> Bool) -> [Element] {
        var removed: [Element] = []
        for index in buckets.indices {
            removed += buckets[index].queue.removeAll(where: shouldRemove)
        }
        count -= removed.count
        return removed
    }

    mutating func drain() -> [Element] {
        var all: [Element] = []
        for index in buckets.indices { all += buckets[index].queue.drain() }
        count = 0
        return all
    }
}
