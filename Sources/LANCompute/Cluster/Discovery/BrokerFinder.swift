// A client's side of discovery: browse DNS-SD and listen for beacons, then keep the first broker that answers.

import Foundation
import Logging
import Synchronization

/// Which announcement mechanism to use.
public enum DiscoveryMechanism: String, Sendable, CaseIterable {
    /// Broker: DNS-SD when the daemon answers, else the beacon. Client: both at once.
    case auto
    case dnssd
    case beacon
}

/// What a client looks for.
public struct DiscoveryOptions: Sendable {
    public var cluster: String
    public var interface: String?
    public var mechanism: DiscoveryMechanism
    public var beaconPort: UInt16
    /// How long a probe (`mmi.topology` on the dispatch endpoint) may take before the broker is skipped.
    public var probeTimeout: Duration
    /// The keys a probe connects with: a broker with keys answers only a client it knows.
    public var probeCurve: CurveSetup?

    public init(cluster: String = BrokerAnnouncement.defaultCluster, interface: String? = nil, mechanism: DiscoveryMechanism = .auto,
                beaconPort: UInt16 = BeaconDatagram.defaultPort, probeTimeout: Duration = .seconds(1), probeCurve: CurveSetup? = nil) {
        self.probeCurve = probeCurve
        self.cluster = cluster
        self.interface = interface
        self.mechanism = mechanism
        self.beaconPort = beaconPort
        self.probeTimeout = probeTimeout
    }
}

/// Browses for brokers of one cluster for as long as it runs; ``find(within:excluding:shouldStop:)``
/// returns the newest-seen broker that answers a probe.
public final class BrokerFinder: Sendable {
    public let options: DiscoveryOptions
    private let logger: Logger
    private let table = LockedValue(DiscoveryTable())
    private let dnssd: DNSSDBrowser?
    private let beacon: BeaconListener?

    /// Starts the browser and listener threads; throws only when no mechanism could start.
    public init(options: DiscoveryOptions, logger: Logger) throws(DiscoverySocketError) {
        self.options = options
        self.logger = logger
        let table = self.table
        if options.mechanism != .beacon {
            let clusterName = options.cluster
            dnssd = DNSSDBrowser(cluster: options.cluster, interface: options.interface, logger: logger) { event in
                switch event {
                case .found(let broker, let service):
                    logger.debug("DNS-SD: broker \(broker.announcement.instance) of cluster \(clusterName) at \(broker.dispatchEndpoint)")
                    table.withLock { $0.saw(broker, service: service, at: .now) }
                case .lost(let service):
                    table.withLock { $0.forget(service: service) }
                case .failed(let error):
                    logger.info("DNS-SD browsing unavailable: \(error)\(options.mechanism == .auto ? "; listening for beacons only" : "")")
                }
            }
        } else {
            dnssd = nil
        }
        if options.mechanism != .dnssd {
            do {
                beacon = try BeaconListener(cluster: options.cluster, port: options.beaconPort, interface: options.interface,
                                            logger: logger) { broker, leaving in
                    table.withLock { leaving ? $0.forget(instance: broker.announcement.instance) : $0.saw(broker, at: .now) }
                }
            } catch {
                if options.mechanism == .beacon { dnssd?.stop(); throw error }
                logger.warning("cannot listen for beacons on UDP \(options.beaconPort): \(error)")
                beacon = nil
            }
        } else {
            beacon = nil
        }
    }

    /// The UDP port the beacon listener is bound to, if it runs.
    public var beaconPort: UInt16? { beacon?.port }

    /// Every broker seen so far (answering or not).
    public var known: [DiscoveredBroker] { table.withLock { $0.known } }

    /// Waits up to `limit` for a broker of the cluster that answers; brokers in `excluding` are not returned.
    public func find(within limit: Duration, excluding: Set<UUID> = [], shouldStop: () -> Bool = { false }) -> DiscoveredBroker? {
        let deadline = ContinuousClock.now + limit
        repeat {
            let candidates = table.withLock { $0.candidates(at: .now) }
            for candidate in candidates where !excluding.contains(candidate.announcement.instance) {
                if shouldStop() { return nil }
                if BrokerProbe.answers(candidate.dispatchEndpoint, within: options.probeTimeout, curve: options.probeCurve) { return candidate }
                logger.info("broker \(candidate.dispatchEndpoint) (cluster \(options.cluster), via \(candidate.mechanism.rawValue)) was announced but does not answer; skipping it")
                table.withLock { $0.markUnreachable(instance: candidate.announcement.instance, at: .now) }
            }
            if shouldStop() { return nil }
            Thread.sleep(forTimeInterval: 0.1)
        } while ContinuousClock.now < deadline
        return nil
    }

    /// The newest broker of the cluster announced within `limit`, without a probe: a worker that is
    /// about to pair cannot probe a broker that does not know its key yet.
    public func announced(within limit: Duration) -> DiscoveredBroker? {
        let deadline = ContinuousClock.now + limit
        repeat {
            if let newest = table.withLock({ $0.candidates(at: .now) }).first { return newest }
            Thread.sleep(forTimeInterval: 0.1)
        } while ContinuousClock.now < deadline
        return nil
    }

    public func stop() {
        dnssd?.stop()
        beacon?.stop()
    }
}

/// Asks a dispatch endpoint for `mmi.topology`: liveness from our own protocol, not from announcements.
public enum BrokerProbe {
    public static func answers(_ endpoint: String, within limit: Duration, curve: CurveSetup? = nil) -> Bool {
        guard let client = try? MDPClient(endpoint: endpoint, curve: curve) else { return false }
        defer { client.close() }
        guard let reply = try? client.request("mmi.topology", body: [], timeout: limit) else { return false }
        if reply.first == Array("200".utf8) { return true }
        // A producer's or observer's key may not ask for the topology: the refusal, over CURVE,
        // still proves the broker answers and holds the key the client expects.
        return curve != nil && reply.first == Array("error".utf8)
            && reply.dropFirst().first.map { String(decoding: $0, as: UTF8.self).hasPrefix(RuntimeErrorCode.peerRefused.code) } == true
    }
}
