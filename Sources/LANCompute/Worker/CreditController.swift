// The credit a worker announces for one stage connection: the link's bandwidth-delay product, smoothed.

/// Adapts a stage connection's credit to its link, the way TCP sizes its window: credit ≈ completion
/// rate × round trip × ``headroom`` + slots, between a floor (the fixed default) and a ceiling.
///
/// The round trip is measured with probes the broker echoes at once (Docs/protocol.md 7.7), and the
/// smallest of the last ``rttSampleCount`` echoes is used: an echo that waited behind items in a
/// socket queue measures the queue, not the link, and the smallest one is the link. The rate is the
/// items this connection finished per second, an EWMA over windows of about two round trips.
///
/// Credit-bound, the worker finishes credit/RTT items a second, so the target is about twice the
/// credit and it doubles each window until the worker's own speed bounds the rate (or the ceiling
/// is reached); there the target stops moving, so it settles instead of oscillating. It grows at
/// most twofold per window and falls by a quarter of the gap, and nothing changes while the target
/// is within an eighth of the credit. A window in which nothing finished teaches nothing and changes nothing, so an
/// idle worker keeps its credit for the next burst.
///
/// Pure: no clock and no socket; the session core feeds it the time.
struct CreditController: Sendable {
    static let headroom = 2.0
    /// The most credit a worker announces on its own; the broker cuts it further to its `--max-credit`.
    static let defaultCeiling = WorkerLimits.defaultMaxCredit
    /// Echoes the minimum is taken over: once they are all in, those of the last 16 s.
    static let rttSampleCount = 8
    /// Probes go every 500 ms until ``rttSampleCount`` echoes are in, then every 2 s: while items
    /// flow a probe and its echo are two messages more (idle, they stand in for heartbeats).
    static let firstProbeInterval = Duration.milliseconds(500)
    static let probeInterval = Duration.seconds(2)
    /// A probe not echoed by then is given up (lost, or a broker that does not echo).
    static let probeTimeout = Duration.seconds(2)
    /// Probes given up in a row, with none ever echoed, after which the broker is taken not to echo:
    /// probing stops and the credit stays at the floor, as an older broker's workers' did.
    static let unansweredLimit = 3
    static let shortestWindow = Duration.milliseconds(250)
    static let longestWindow = Duration.seconds(2)

    let floor: Int
    let ceiling: Int
    let slots: Int
    /// The credit last announced (the floor until the first change).
    private(set) var credit: Int
    /// The smallest recent echo: the link's round trip; nil until one came back.
    private(set) var roundTrip: Duration?
    /// Items finished per second, smoothed; nil until a window with finished items closed.
    private(set) var rate: Double?

    private var samples: [Duration] = []
    private var probe: (token: UInt64, sentAt: ContinuousClock.Instant)?
    private var lastToken: UInt64 = 0
    private var nextProbeAt: ContinuousClock.Instant
    private var unanswered = 0
    private var everEchoed = false
    private var windowStart: ContinuousClock.Instant
    private var finishedInWindow = 0
    /// Whether an announcement carried the round trip yet: the first measured one is announced
    /// even when the credit stays, so `lancompute nodes` shows every adapting worker's round trip.
    private var roundTripAnnounced = false

    init(floor: Int, ceiling: Int = Self.defaultCeiling, slots: Int, now: ContinuousClock.Instant) {
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, ceiling)
        self.slots = max(1, slots)
        credit = self.floor
        nextProbeAt = now
        windowStart = now
    }

    /// Whether probing was given up: the broker never echoed.
    var brokerDoesNotEcho: Bool { !everEchoed && unanswered >= Self.unansweredLimit }

    /// What is due at `now`: a probe to send (its token), and a credit to announce.
    struct Step: Equatable, Sendable {
        var probe: UInt64?
        var credit: Int?
    }

    /// Items of this connection were finished (answered or handed to the aggregator).
    mutating func finished(_ count: Int) {
        finishedInWindow += count
    }

    /// The broker echoed probe `token`.
    mutating func echoed(_ token: UInt64, at now: ContinuousClock.Instant) {
        guard let probe, probe.token == token else { return }  // late or foreign: the sample would lie
        self.probe = nil
        everEchoed = true
        unanswered = 0
        samples.append(now - probe.sentAt)
        if samples.count > Self.rttSampleCount { samples.removeFirst(samples.count - Self.rttSampleCount) }
        roundTrip = samples.min()
        nextProbeAt = probe.sentAt + (samples.count < Self.rttSampleCount ? Self.firstProbeInterval : Self.probeInterval)
    }

    /// Moves time on: gives up a stale probe, sends a due one, and closes a window that is over.
    mutating func advance(to now: ContinuousClock.Instant) -> Step {
        var step = Step()
        if let sent = probe, now - sent.sentAt >= Self.probeTimeout {
            probe = nil
            unanswered += 1
            nextProbeAt = now
        }
        if probe == nil, !brokerDoesNotEcho, now >= nextProbeAt {
            lastToken += 1
            probe = (lastToken, now)
            step.probe = lastToken
        }
        if now - windowStart >= window {
            step.credit = closeWindow(now: now)
        }
        return step
    }

    /// When ``advance(to:)`` has something to do next.
    var nextDue: ContinuousClock.Instant {
        let windowEnd = windowStart + window
        if let probe { return min(probe.sentAt + Self.probeTimeout, windowEnd) }
        if brokerDoesNotEcho { return windowEnd }
        return min(nextProbeAt, windowEnd)
    }

    /// About two round trips, so that a window sees whole bursts of a credit-bound link.
    private var window: Duration {
        guard let roundTrip else { return Self.shortestWindow }
        return min(max(roundTrip * 2, Self.shortestWindow), Self.longestWindow)
    }

    private mutating func closeWindow(now: ContinuousClock.Instant) -> Int? {
        let elapsed = now - windowStart
        let finished = finishedInWindow
        windowStart = now
        finishedInWindow = 0
        guard finished > 0 else { return nil }
        let sample = Double(finished) / Self.seconds(elapsed)
        let smoothed = rate.map { 0.5 * $0 + 0.5 * sample } ?? sample
        rate = smoothed
        guard let roundTrip else { return nil }
        let product = (smoothed * Self.seconds(roundTrip) * Self.headroom).rounded(.up)
        let target = min(max(Int(min(product, Double(ceiling))) + slots, floor), ceiling)
        let gap = target - credit
        let announcedRoundTrip = roundTripAnnounced
        roundTripAnnounced = true
        guard abs(gap) >= max(1, credit / 8) else { return announcedRoundTrip ? nil : credit }
        credit = gap > 0 ? min(target, credit * 2) : credit - max(1, -gap / 4)
        return credit
    }

    static func seconds(_ duration: Duration) -> Double {
        let (whole, atto) = duration.components
        return Double(whole) + Double(atto) / 1e18
    }
}
