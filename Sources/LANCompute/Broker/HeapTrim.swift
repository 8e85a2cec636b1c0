// Gives the heap's free pages back to the system after a long queue filled or drained.

#if canImport(Glibc)
import Glibc
#endif

/// A queue of hundreds of thousands of items is filled from decoded source batches that are freed
/// as the items move into the compact queue; the allocator keeps those freed pages, so the
/// broker's resident size stays as large as the largest burst. Once the queued total has moved by
/// ``step`` items since the last trim, at most once a second, the free pages are returned (``trim``).
struct HeapTrim {
    static let step = 2 * StageQueue.defaultCompactAfter
    static let interval = Duration.seconds(1)

    private var queuedAtLastTrim = 0
    private var lastTrim: ContinuousClock.Instant

    init(now: ContinuousClock.Instant = .now) { lastTrim = now }

    /// Call once a loop iteration with the queued total; trims when it is due (and says so).
    @discardableResult
    mutating func check(queued: Int, now: ContinuousClock.Instant) -> Bool {
        guard abs(queued - queuedAtLastTrim) >= Self.step, now - lastTrim >= Self.interval else { return false }
        queuedAtLastTrim = queued
        lastTrim = now
        Self.trim?()
        return true
    }

    /// Returns the free pages: mimalloc's `mi_collect(true)` when the process's malloc is mimalloc
    /// (the lancompute executable on Linux), else glibc's `malloc_trim(0)`, each looked up once
    /// (Glibc's module map leaves out `malloc.h`, and the library does not link mimalloc); nil elsewhere.
    private static let trim: (@Sendable () -> Void)? = {
        #if canImport(Glibc)
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mi_collect") {
            let collect = unsafeBitCast(symbol, to: (@convention(c) (Bool) -> Void).self)
            return { collect(true) }
        }
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        let mallocTrim = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        return { _ = mallocTrim(0) }
        #else
        return nil
        #endif
    }()
}
