// A monotonic instant the compiler can handle inline, for the stamps on every item's path.

/// An instant of `ContinuousClock`, as nanoseconds since the first instant the process converted.
///
/// `ContinuousClock.Instant` is not frozen: outside the standard library every copy, store,
/// comparison and subtraction of one, and every check of an optional one, is a call through its
/// type's value witnesses. The broker stamps each item several times on its way (queued, sent,
/// started, answered) and reads the stamps again when it settles, so the core keeps those stamps
/// as a `Tick`, one `Int64`, and converts the `now` of each call into it once.
struct Tick: Comparable, Hashable, Sendable {
    var nanoseconds: Int64

    init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    init(_ instant: ContinuousClock.Instant) {
        nanoseconds = Tick.nanoseconds(of: instant - Tick.origin)
    }

    /// The instant this tick stands for.
    var instant: ContinuousClock.Instant { Tick.origin + .nanoseconds(nanoseconds) }

    /// Tick zero: taken the first time a tick is made from an instant.
    private static let origin = ContinuousClock.now

    /// Whole microseconds from `earlier` to this tick; zero when `earlier` is later.
    func microseconds(since earlier: Tick) -> UInt64 {
        nanoseconds > earlier.nanoseconds ? UInt64(nanoseconds &- earlier.nanoseconds) / 1000 : 0
    }

    static func < (left: Tick, right: Tick) -> Bool { left.nanoseconds < right.nanoseconds }

    static func - (later: Tick, earlier: Tick) -> Duration { .nanoseconds(later.nanoseconds &- earlier.nanoseconds) }

    static func + (tick: Tick, duration: Duration) -> Tick {
        Tick(nanoseconds: tick.nanoseconds &+ nanoseconds(of: duration))
    }

    /// Whole nanoseconds of `duration` (the parts of one dropped toward zero).
    private static func nanoseconds(of duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}
