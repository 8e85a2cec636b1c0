// The circuit breaker of one worker process at one stage: closed, open for a cool-down, probing; pure state, time injected.

/// Where a breaker stands.
enum BreakerState: Equatable, Sendable {
    /// The worker gets the stage's items as usual.
    case closed
    /// Quarantined: no item of the stage until `until`.
    case open(until: ContinuousClock.Instant)
    /// The cool-down is over: the worker may take one item at a time (the probe) while it holds none.
    case probing

    /// The word `lancompute nodes` and the events use.
    var name: String {
        switch self {
        case .closed: "closed"
        case .open: "open"
        case .probing: "probing"
        }
    }
}

/// What an outcome did to a breaker.
enum BreakerVerdict: Equatable {
    /// Nothing changed.
    case unchanged
    /// A closed breaker's window crossed its thresholds: the core decides whether to open it
    /// (``CircuitBreaker/open(at:)``), since a worker is quarantined only while another does better.
    case tripped
    /// A probe failed: the breaker opened again, for `cooldown`.
    case reopened(cooldown: Duration)
    /// A probe succeeded: the breaker closed.
    case closed
}

/// The breaker of one worker process (node) at one stage.
///
/// It weighs the worker's last ``BreakerPolicy/window`` outcomes. When at least
/// ``BreakerPolicy/failures`` of them failed, and they are at least half, it trips. Open, it
/// refuses items until its cool-down ends, then probes: one item, while the worker holds no other.
/// A probe that succeeds closes it (and the next cool-down starts from the first again); one that
/// fails opens it for twice the last cool-down, up to ``BreakerPolicy/maxCooldown``.
///
/// A class: the core's worker records point at it, and it outlives a worker connection, so a worker
/// process that registers again does not start afresh.
final class CircuitBreaker {
    let policy: BreakerPolicy
    private(set) var state: BreakerState = .closed
    /// The latest outcomes, true for a failure, oldest first; at most `policy.window`.
    private var outcomes = FIFOQueue<Bool>()
    private(set) var failuresInWindow = 0
    /// The cool-down of the current or last quarantine; zero before the first.
    private(set) var cooldown: Duration = .zero
    /// Quarantines since the breaker last closed after a probe.
    private(set) var opens = 0
    /// When the breaker last saw an outcome or changed state: breakers of nodes long gone are forgotten.
    private(set) var lastUsed: ContinuousClock.Instant

    init(policy: BreakerPolicy, now: ContinuousClock.Instant) {
        self.policy = policy
        lastUsed = now
    }

    var outcomesInWindow: Int { outcomes.count }
    var isOpen: Bool { if case .open = state { true } else { false } }

    /// Whether the worker may be sent an item now, holding `inFlight` items of the stage.
    func admits(holding inFlight: Int) -> Bool {
        switch state {
        case .closed: true
        case .open: false
        case .probing: inFlight == 0
        }
    }

    /// Items the worker may be sent at once: one while probing.
    func room(_ room: Int) -> Int { state == .probing ? min(1, room) : room }

    /// Closed, with at least one success among its recent outcomes and fewer than half failures:
    /// evidence that the stage itself works, so a worker that fails it is the one at fault.
    var isHealthy: Bool {
        state == .closed && outcomes.count > failuresInWindow && failuresInWindow * 2 < outcomes.count
    }

    /// Records one attempt's outcome at `now`.
    func record(failed: Bool, at now: ContinuousClock.Instant) -> BreakerVerdict {
        lastUsed = now
        switch state {
        case .open:
            // An item sent before it opened: the quarantine has its reason already.
            return .unchanged
        case .probing:
            if failed {
                cooldown = min(cooldown * 2, policy.maxCooldown)
                opens += 1
                state = .open(until: now + cooldown)
                return .reopened(cooldown: cooldown)
            }
            state = .closed
            opens = 0
            cooldown = .zero
            _ = outcomes.drain()
            failuresInWindow = 0
            return .closed
        case .closed:
            outcomes.append(failed)
            if failed { failuresInWindow += 1 }
            while outcomes.count > policy.window, let oldest = outcomes.popFirst() {
                if oldest { failuresInWindow -= 1 }
            }
            return failuresInWindow >= policy.failures && failuresInWindow * 2 >= outcomes.count ? .tripped : .unchanged
        }
    }

    /// Opens a closed breaker (after ``BreakerVerdict/tripped``); returns the cool-down.
    func open(at now: ContinuousClock.Instant) -> Duration {
        lastUsed = now
        cooldown = policy.cooldown
        opens += 1
        state = .open(until: now + cooldown)
        return cooldown
    }

    /// Moves an open breaker whose cool-down is over to probing; returns whether it did.
    func expire(at now: ContinuousClock.Instant) -> Bool {
        guard case .open(let until) = state, now >= until else { return false }
        lastUsed = now
        state = .probing
        return true
    }
}
