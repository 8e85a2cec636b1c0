// Which brokers of a cluster a client has seen, which are stale, and which failed a probe: pure, clock injected.

import Foundation

/// The sightings a client has gathered, keyed by broker instance. An announcement is only a hint:
/// a record can outlive its broker (a crashed host's mDNS record lingers for its TTL), so a
/// candidate that fails a probe is set aside for ``retryAfter`` while the others are tried.
public struct DiscoveryTable: Sendable {
    struct Entry: Sendable {
        var broker: DiscoveredBroker
        var lastSeen: ContinuousClock.Instant
        var service: String?
        var unreachableUntil: ContinuousClock.Instant?
    }

    /// A beacon not heard for this long is forgotten (beacons come every second).
    public var beaconExpiry: Duration
    /// How long a candidate that failed a probe is skipped.
    public var retryAfter: Duration
    private var entries: [UUID: Entry] = [:]

    public init(beaconExpiry: Duration = .seconds(5), retryAfter: Duration = .seconds(5)) {
        self.beaconExpiry = beaconExpiry
        self.retryAfter = retryAfter
    }

    /// Records a sighting; a new sighting of a broker set aside makes it a candidate again only
    /// when something about it changed (address or ports), since a lingering record repeats itself.
    public mutating func saw(_ broker: DiscoveredBroker, service: String? = nil, at now: ContinuousClock.Instant) {
        let id = broker.announcement.instance
        var entry = entries[id] ?? Entry(broker: broker, lastSeen: now, service: service)
        if entry.broker != broker { entry.unreachableUntil = nil }
        entry.broker = broker
        entry.lastSeen = now
        if let service { entry.service = service }
        entries[id] = entry
    }

    /// The broker said it is leaving (beacon flag), or its DNS-SD record was withdrawn.
    public mutating func forget(instance: UUID) { entries[instance] = nil }

    public mutating func forget(service: String) {
        for (id, entry) in entries where entry.service == service { entries[id] = nil }
    }

    public mutating func markUnreachable(instance: UUID, at now: ContinuousClock.Instant) {
        entries[instance]?.unreachableUntil = now + retryAfter
    }

    /// Brokers worth probing now, most recently seen first (a restarted broker beats its predecessor).
    public mutating func candidates(at now: ContinuousClock.Instant) -> [DiscoveredBroker] {
        entries = entries.filter { $0.value.broker.mechanism != .beacon || now - $0.value.lastSeen <= beaconExpiry }
        return entries.values
            .filter { $0.unreachableUntil.map { now >= $0 } ?? true }
            .sorted { $0.lastSeen > $1.lastSeen }
            .map(\.broker)
    }

    /// Every broker currently known, whether or not it answered a probe.
    public var known: [DiscoveredBroker] { entries.values.map(\.broker) }
}
