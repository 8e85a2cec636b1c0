// Gives the heap's free pages back to the system after a long queue filled or drained.

#if canImport(Glibc)
import Glibc
#endif

/// A queue of hundreds of thousands of items is filled from decoded source batches that are freed
/// as the items move into the compact queue; glibc keeps those freed pages in its arenas, so the
/// broker's resident size stays as large as the largest burst. Once the queued total has moved by
/// ``step`` items since the last trim, at most once a second, `malloc_trim` returns the free pages.
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
        _ = Self.trim?(0)
        return true
    }

    /// glibc's `malloc_trim`, looked up once (Glibc's module map leaves out `malloc.h`); nil elsewhere.
    private static let trim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()
}
