// Which of a flood of protocol errors reach the log: one per peer per interval, and a bounded number in all.

/// Decides whether a protocol error from a peer is logged.
///
/// A peer gets one line per `interval`, the first of that interval, so a peer that floods is one
/// line every interval and never hides the first error of another. At most `linesPerInterval` lines
/// are logged in an interval whatever the number of peers (a flood from a thousand connections is
/// not a thousand lines), and the table of peers is bounded by `capacity`. Every error is still counted.
struct PeerLogThrottle {
    let interval: Duration
    let linesPerInterval: Int
    let capacity: Int
    private var lastLogged: [PeerID: ContinuousClock.Instant] = [:]
    private var intervalStart: ContinuousClock.Instant?
    private var linesInInterval = 0

    init(interval: Duration = .seconds(10), linesPerInterval: Int = 50, capacity: Int = 4096) {
        self.interval = interval
        self.linesPerInterval = linesPerInterval
        self.capacity = capacity
    }

    /// Whether the error from `peer` at `now` is logged.
    mutating func admit(_ peer: PeerID, at now: ContinuousClock.Instant) -> Bool {
        if let start = intervalStart, now - start < interval {
            guard linesInInterval < linesPerInterval else { return false }
        } else {
            intervalStart = now
            linesInInterval = 0
        }
        if let last = lastLogged[peer], now - last < interval { return false }
        if lastLogged.count >= capacity {
            lastLogged = lastLogged.filter { now - $0.value < interval }
            if lastLogged.count >= capacity { lastLogged.removeAll() }
        }
        lastLogged[peer] = now
        linesInInterval += 1
        return true
    }
}
