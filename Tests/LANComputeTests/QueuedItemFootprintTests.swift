// Measures what a queued item costs the broker in heap bytes: as an object (BrokerItem, payload, slot) and compactly.

import Testing
@testable import LANCompute

#if canImport(Glibc)
import Glibc

/// glibc's `malloc_usable_size` (malloc.h is not in Swift's Glibc module): the bytes a block holds.
private let mallocUsableSize: @convention(c) (UnsafeRawPointer?) -> Int = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size") else {
        fatalError("malloc_usable_size not found")
    }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeRawPointer?) -> Int).self)
}()

/// Heap bytes a malloc block costs: what it holds plus glibc's 8-byte chunk header.
private func blockBytes(_ pointer: UnsafeRawPointer) -> Int { mallocUsableSize(pointer) + 8 }

@Suite(.timeLimit(.minutes(1))) struct QueuedItemFootprintTests {
    /// Allocation sizes, not process-wide counters: exact, and unaffected by tests running alongside.
    @Test func queuedSmallItemCostIsBrokenDown() {
        let now = Tick(ContinuousClock.now)
        let count = 100_000
        var queue = FIFOQueue<BrokerItem>()
        var objectBytes = 0
        var payloadBytes = 0
        for index in 0..<count {
            let item = BrokerItem(id: UInt64(index), stage: 0, payload: SourceReader.generated(index: index, size: 12), enqueuedAt: now, bornAt: now)
            objectBytes += blockBytes(Unmanaged.passUnretained(item).toOpaque())
            // A non-empty array is one pointer to its heap storage object.
            payloadBytes += blockBytes(unsafeBitCast(item.payload, to: UnsafeRawPointer.self))
            queue.append(item)
        }
        let slotBytes = Double(queue.allocatedSlots * MemoryLayout<BrokerItem>.stride) / Double(count)
        let object = Double(objectBytes) / Double(count)
        let payload = Double(payloadBytes) / Double(count)
        print("""
            heap bytes per queued item (12-byte payload, \(count) items): \
            BrokerItem \(object), payload \(payload), queue slot \(slotBytes), total \(object + payload + slotBytes); \
            field sizes: Tick \(MemoryLayout<Tick>.size), Tick? \(MemoryLayout<Tick?>.size), \
            ClientReturn? \(MemoryLayout<ClientReturn?>.size), String \(MemoryLayout<String>.size)
            """)
        // The breakdown (about 155 bytes for a 12-byte item): the BrokerItem object 80 (a 16-byte
        // header; id, root, payload, enqueuedAt, bornAt 8 each (the stamps are ticks); the side
        // object of rare fields 8; stage 4, attempts 2, priority 2: 72, in an 80-byte chunk), the
        // payload array 48 to 64 (32-byte header), the queue slot 8 to 16. Deadline, key, client and
        // errors live in a side object only the items that use them pay for (it was 192 bytes with
        // them inline; the stamps as `ContinuousClock.Instant`s, 16 bytes each, made it 96).
        #expect(object >= 72 && object < 88, "a BrokerItem object takes \(object) bytes")
        // 32 bytes of array header, then the bytes and the capacity `generated` grew to.
        #expect(payload >= 48 && payload < 66, "a 12-byte payload takes \(payload) bytes")
        #expect(slotBytes <= 16, "a queue slot takes \(slotBytes) bytes")
        #expect(queue.count == count)
    }

    /// A long queue keeps plain items compactly: what that costs for 100-byte items, against the object form.
    @Test func compactQueuedItemCostsLittleMoreThanItsPayload() {
        let now = Tick(ContinuousClock.now)
        let count = 100_000
        var objects = 0
        var queue = StageQueue(stage: 0)
        for index in 0..<count {
            let item = BrokerItem(id: UInt64(index), stage: 0, payload: SourceReader.generated(index: index, size: 100),
                                  enqueuedAt: now + .milliseconds(Int64(index / 256)), bornAt: now + .milliseconds(Int64(index / 256)))
            if queue.takesCompactly(item) {
                queue.append(compactly: item, priority: 0, rootCounted: false)
            } else {
                objects += blockBytes(Unmanaged.passUnretained(item).toOpaque()) + blockBytes(unsafeBitCast(item.payload, to: UnsafeRawPointer.self))
                queue.append(item, priority: 0)
            }
        }
        let compact = queue.compactCount
        #expect(compact == count - StageQueue.defaultCompactAfter, "the first \(StageQueue.defaultCompactAfter) items stay objects")
        let perCompact = Double(queue.compactHeapBytes) / Double(compact)
        let perObject = Double(objects) / Double(count - compact)
        print("heap bytes per queued 100-byte item: compact \(perCompact), as an object with its payload \(perObject) (and a queue slot)")
        // 100 payload bytes, an 8-byte id, a 4-byte end, a share of its batch's instant and of the
        // runs' unused room; the goal is under 150 (1.5x the payload).
        #expect(perCompact >= 112 && perCompact < 120, "a compact 100-byte item takes \(perCompact) bytes")
        #expect(perObject >= 210, "an object and its payload array take \(perObject) bytes")
    }
}
#endif
