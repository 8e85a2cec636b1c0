// The FIFO queue under the broker's queues: order, and popped objects released at once.

import Testing
@testable import LANCompute

@Suite struct FIFOQueueTests {
    final class Token {}

    @Test func keepsOrderAcrossPrependsPopsAndTrims() {
        var queue = FIFOQueue<Int>()
        for value in 0..<3000 { queue.append(value) }
        for expected in 0..<2000 { #expect(queue.popFirst() == expected) }
        queue.prepend(-1)
        #expect(queue.first == -1 && queue.last == 2999 && queue.count == 1001)
        #expect(Array(queue.elements.prefix(3)) == [-1, 2000, 2001])
        #expect(queue.removeAll { $0 % 2 == 1 }.count == 500)
        #expect(queue.drain() == [-1] + Array(stride(from: 2000, to: 3000, by: 2)))
        #expect(queue.isEmpty && queue.popFirst() == nil)
    }

    @Test func aPoppedObjectIsReleasedAtOnce() {
        var queue = FIFOQueue<Token>()
        weak var popped: Token?
        do {
            let token = Token()
            popped = token
            queue.append(token)
            queue.append(Token())
        }
        #expect(popped != nil)
        _ = queue.popFirst()
        // Far from the length at which the storage before the head is cut off: only the emptied slot frees it.
        #expect(popped == nil)
        #expect(queue.count == 1)
    }
}
