// A first-in first-out queue with O(1) amortised push and pop.

/// A FIFO queue backed by an array and a moving head.
///
/// A popped element's slot is emptied at once: an element that is an object (an item, an in-flight
/// entry) is released when it leaves the queue, not when the storage before the head is next cut off.
struct FIFOQueue<Element> {
    /// Slots before `head` are nil; those from it on hold the elements.
    private var storage: [Element?] = []
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
        storage[head] = nil
        head += 1
        if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    var first: Element? { head < storage.count ? storage[head] : nil }
    var last: Element? { head < storage.count ? storage[storage.count - 1] : nil }

    /// The elements, first to last.
    var elements: LazyMapSequence<ArraySlice<Element?>, Element> { storage[head...].lazy.map { $0! } }

    /// Removes and returns every element for which `shouldRemove` is true, keeping the order of the rest.
    mutating func removeAll(where shouldRemove: (Element) -> Bool) -> [Element] {
        var kept: [Element?] = []
        var removed: [Element] = []
        for case let element? in storage[head...] {
            if shouldRemove(element) { removed.append(element) } else { kept.append(element) }
        }
        storage = kept
        head = 0
        return removed
    }

    mutating func drain() -> [Element] {
        let all = storage[head...].map { $0! }
        storage.removeAll()
        head = 0
        return all
    }
}
