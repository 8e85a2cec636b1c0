// The stage queue without a core: order across compact and object items, priorities, retries at the front, what it holds.

import Testing
@testable import LANCompute

@Suite struct StageQueueTests {
    let start = ContinuousClock.now
    /// The stamps items carry (the core's ``Tick``), for the same instant.
    var startTick: Tick { Tick(start) }

    /// A plain item: first attempt, no deadline, key or client.
    func plain(_ id: UInt64, payload: [UInt8]? = nil, priority: Int16 = 0, root: UInt64? = nil, queuedAfter: Duration = .zero,
               bornAfter: Duration = .zero) -> BrokerItem {
        let item = BrokerItem(id: id, stage: 2, payload: payload ?? [UInt8(truncatingIfNeeded: id), 7], enqueuedAt: startTick + queuedAfter,
                              bornAt: startTick + bornAfter, root: root)
        item.priority = priority
        return item
    }

    /// Appends as the core does: compactly when the queue takes it so, as an object otherwise.
    func append(_ item: BrokerItem, to queue: inout StageQueue, rootCounted: Bool = true) {
        if queue.takesCompactly(item) {
            queue.append(compactly: item, priority: item.priority, rootCounted: rootCounted)
        } else {
            queue.append(item, priority: item.priority)
        }
    }

    func popAll(_ queue: inout StageQueue) -> [BrokerItem] {
        var items: [BrokerItem] = []
        while let (item, _) = queue.popFirst() { items.append(item) }
        return items
    }

    @Test func compactAndObjectItemsLeaveInTheOrderTheyCame() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        let keyed = plain(2)
        keyed.key = [1]  // per-item state: it stays an object
        let retried = plain(4)
        retried.attempts = 1
        let items = [plain(1), keyed, plain(3), retried, plain(5), plain(6)]
        for item in items { append(item, to: &queue) }
        #expect(queue.count == 6)
        #expect(queue.compactCount == 4, "the plain items are kept compactly, the keyed and the retried one as objects")
        let popped = popAll(&queue)
        #expect(popped.map(\.id) == [1, 2, 3, 4, 5, 6])
        #expect(popped[1] === keyed && popped[3] === retried, "objects come back as themselves")
        #expect(popped.map(\.payload) == items.map(\.payload))
        #expect(queue.isEmpty && queue.popFirst() == nil)
    }

    @Test func aCompactItemComesBackWithEveryFieldItWentInWith() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        // Source items first (root is the id, born when queued), then children of another root born
        // earlier, queued at other instants: the lazily filled root and birth columns must keep both.
        let items = [
            plain(10, queuedAfter: .seconds(1), bornAfter: .seconds(1)),
            plain(11, payload: [], queuedAfter: .seconds(1), bornAfter: .seconds(1)),
            plain(12, queuedAfter: .seconds(2), bornAfter: .seconds(2)),
            plain(13, payload: Array(repeating: 9, count: 300), root: 99, queuedAfter: .seconds(2), bornAfter: .milliseconds(5)),
            plain(14, queuedAfter: .seconds(3), bornAfter: .seconds(3)),
        ]
        for item in items { append(item, to: &queue) }
        #expect(queue.compactCount == items.count)
        for (expected, item) in zip(items, popAll(&queue)) {
            #expect(item !== expected)
            #expect(item.id == expected.id && item.root == expected.root && item.payload == expected.payload)
            #expect(item.enqueuedAt == expected.enqueuedAt && item.bornAt == expected.bornAt)
            #expect(item.stage == 2 && item.priority == 0 && item.attempts == 0 && item.isPlain)
        }
    }

    @Test func higherPrioritiesFirstAndFirstInFirstOutWithinOne() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        let order: [(UInt64, Int16)] = [(1, 0), (2, 5), (3, -1), (4, 0), (5, 5), (6, -1), (7, 0)]
        for (id, priority) in order {
            let item = plain(id, priority: priority)
            if id == 4 { item.deadline = start + .seconds(1) }  // an object among compact items of its priority
            append(item, to: &queue)
        }
        let popped = popAll(&queue)
        #expect(popped.map(\.id) == [2, 5, 1, 4, 7, 3, 6])
        #expect(popped.map(\.priority) == [5, 5, 0, 0, 0, -1, -1])
    }

    @Test func retriesGoToTheFrontOfTheirPriorityOnly() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        for id: UInt64 in 1...3 { append(plain(id), to: &queue) }
        append(plain(4, priority: 1), to: &queue)
        let retry = plain(9)
        retry.attempts = 1
        queue.prepend(retry, priority: 0)
        let again = plain(8)
        again.attempts = 2
        queue.prepend(again, priority: 0)
        #expect(popAll(&queue).map(\.id) == [4, 8, 9, 1, 2, 3])
        // Put back after the front run was emptied: still first.
        append(plain(20), to: &queue)
        queue.prepend(retry, priority: 0)
        #expect(popAll(&queue).map(\.id) == [9, 20])
    }

    @Test func whetherAnItemIsCountedComesBackWithIt() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        append(plain(1), to: &queue, rootCounted: false)
        append(plain(2), to: &queue, rootCounted: true)
        append(plain(3), to: &queue, rootCounted: false)
        let keyed = plain(4)
        keyed.key = [1]
        append(keyed, to: &queue)
        var popped: [(UInt64, Bool)] = []
        while let (item, counted) = queue.popFirst() { popped.append((item.id, counted)) }
        #expect(popped.map(\.0) == [1, 2, 3, 4])
        #expect(popped.map(\.1) == [false, true, false, true])
    }

    @Test func shortQueuesKeepObjectsAndLongOnesCompactItems() {
        var queue = StageQueue(stage: 2, compactAfter: 100)
        for id in 0..<100 { append(plain(UInt64(id)), to: &queue) }
        #expect(queue.compactCount == 0)
        for id in 100..<150 { append(plain(UInt64(id)), to: &queue) }
        #expect(queue.compactCount == 50)
        // Down to 60 items, fewer than the threshold but more than half of it: its tail stays compact.
        for _ in 0..<90 { _ = queue.popFirst() }
        append(plain(150), to: &queue)
        #expect(queue.compactCount == 51)
        // Below half: objects again.
        for _ in 0..<20 { _ = queue.popFirst() }
        append(plain(151), to: &queue)
        #expect(queue.compactCount == 41)
        let large = plain(152, payload: Array(repeating: 1, count: StageQueue.compactPayloadLimit + 1))
        #expect(!StageQueue(stage: 2, compactAfter: 0).takesCompactly(large), "a large payload stays in its own array")
        #expect(!StageQueue(stage: 3, compactAfter: 0).takesCompactly(plain(153)), "an item of another stage is refused")
        #expect(popAll(&queue).map(\.id) == (110...151).map { UInt64($0) })
    }

    @Test func removingByStateVisitsObjectsAndKeepsTheOrderOfTheRest() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        for id in 1...6 {
            let item = plain(UInt64(id))
            if id.isMultiple(of: 2) { item.deadline = start + .seconds(Int64(id)) }
            append(item, to: &queue)
        }
        var visited: [UInt64] = []
        let removed = queue.removeObjects { item in
            visited.append(item.id)
            return item.deadline.map { $0 <= start + .seconds(4) } ?? false
        }
        #expect(visited == [2, 4, 6], "compact items have no deadline to test")
        #expect(removed.map(\.id) == [2, 4])
        #expect(queue.count == 4)
        #expect(queue.drain().map(\.item.id) == [1, 3, 5, 6])
        #expect(queue.isEmpty && queue.compactCount == 0)
    }

    @Test func manyItemsSpanRunsInOrderAndCostLittleMoreThanTheirPayloads() {
        var queue = StageQueue(stage: 2, compactAfter: 0)
        let count = 50_000
        // A new instant every 64 items, as items arrive in batches.
        for index in 0..<count {
            let payload = SourceReader.generated(index: index, size: 100)
            append(plain(UInt64(index), payload: payload, queuedAfter: .milliseconds(Int64(index / 64)),
                         bornAfter: .milliseconds(Int64(index / 64))), to: &queue)
        }
        #expect(queue.compactCount == count)
        let perItem = Double(queue.compactHeapBytes) / Double(count)
        // 100 payload bytes, an 8-byte id, a 4-byte end, a share of the batch's instant and of the
        // last run's unused room: far from the some 250 bytes an object and its own array take.
        #expect(perItem > 112 && perItem < 120, "a compact 100-byte item takes \(perItem) bytes")
        var next = 0
        while let (item, _) = queue.popFirst() {
            guard item.id == UInt64(next), item.payload == SourceReader.generated(index: next, size: 100),
                  item.enqueuedAt == startTick + .milliseconds(Int64(next / 64)) else { break }
            next += 1
        }
        #expect(next == count, "item \(next) came back out of order or changed")
        #expect(queue.compactHeapBytes == 0, "emptied runs are freed")
    }
}
