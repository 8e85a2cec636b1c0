// The `--discover` options of the client commands and the `--announce` options of the broker commands.

import ArgumentParser
import Foundation
import LANCompute
import Logging

extension DiscoveryMechanism: ExpressibleByArgument {}

/// `worker`, `top`, `events`, `feed`: find the broker instead of naming its endpoint.
struct DiscoverOptions: ParsableArguments {
    @Flag(help: "Find the broker on the LAN (DNS-SD, else the UDP beacon) instead of naming its endpoint.")
    var discover = false

    @Option(help: "With --discover: the cluster to join.")
    var cluster: String = BrokerAnnouncement.defaultCluster

    @Option(help: "With --discover: look only on this network interface, e.g. eth0.")
    var interface: String?

    @Option(help: "With --discover: auto (DNS-SD and beacon), dnssd or beacon.")
    var discovery: DiscoveryMechanism = .auto

    @Option(name: .customLong("beacon-port"), help: "With --discover: the UDP port beacons arrive on.")
    var beaconPort: UInt16 = BeaconDatagram.defaultPort

    @Option(name: .customLong("discover-timeout"), help: "With --discover: seconds to look before giving up (worker: forever).")
    var discoverTimeout: Double = 15

    func validate() throws {
        if let problem = BrokerAnnouncement.problem(withCluster: cluster) { throw ValidationError("--cluster: \(problem)") }
        if discoverTimeout <= 0 { throw ValidationError("--discover-timeout must be positive") }
        if let interface, !IPv4Interface.all().contains(where: { $0.name == interface }) {
            throw ValidationError("--interface: this machine has no IPv4 interface named '\(interface)'")
        }
    }

    func options(curve: CurveSetup? = nil) -> DiscoveryOptions {
        DiscoveryOptions(cluster: cluster, interface: interface, mechanism: discovery, beaconPort: beaconPort, probeCurve: curve)
    }

    /// Starts looking (probing with `curve`'s keys); exits with LC2051 when no mechanism can run.
    func finder(logger: Logger, curve: CurveSetup? = nil) -> BrokerFinder {
        do {
            return try BrokerFinder(options: options(curve: curve), logger: logger)
        } catch {
            fail(RuntimeError(.discoveryUnavailable, "cannot look for brokers: \(error)"))
        }
    }

    /// The first broker of the cluster that answers, or exit LC2050 after `--discover-timeout`.
    func find(command: String, curve: CurveSetup? = nil) -> DiscoveredBroker {
        let finder = finder(logger: Logger(label: "lancompute.discovery"), curve: curve)
        defer { finder.stop() }
        guard let broker = finder.find(within: .milliseconds(Int(discoverTimeout * 1000))) else {
            let seen = finder.known.count
            fail(RuntimeError(.discoveryNoBroker, "no broker of cluster \(cluster) answered within \(discoverTimeout) s"
                 + (seen > 0 ? " (\(seen) announced but did not answer)" : " (none announced\(interface.map { " on \($0)" } ?? ""))")))
        }
        FileHandle.standardError.write(Data("lancompute \(command): discovered broker \(broker.dispatchEndpoint) (cluster \(cluster), via \(broker.mechanism.rawValue))\n".utf8))
        return broker
    }

    /// `worker --discover --pair`: the newest broker announced, unprobed (it does not know this
    /// machine's key yet), or exit LC2050 after `--discover-timeout`.
    func announced() -> DiscoveredBroker {
        let finder = finder(logger: Logger(label: "lancompute.discovery"))
        defer { finder.stop() }
        guard let broker = finder.announced(within: .milliseconds(Int(discoverTimeout * 1000))) else {
            fail(RuntimeError(.discoveryNoBroker, "no broker of cluster \(cluster) was announced within \(discoverTimeout) s\(interface.map { " on \($0)" } ?? "")"))
        }
        return broker
    }
}

/// `broker`, `run`: announce the broker so `--discover` finds it.
struct AnnounceOptions: ParsableArguments {
    @Flag(help: "Announce the broker on the LAN even when it binds only loopback (default: when it binds a non-loopback address).")
    var announce = false

    @Flag(name: .customLong("no-announce"), help: "Do not announce the broker.")
    var noAnnounce = false

    @Option(help: "The cluster name announced.")
    var cluster: String = BrokerAnnouncement.defaultCluster

    @Option(help: "Announce only on this network interface, e.g. eth0.")
    var interface: String?

    @Option(help: "How to announce: auto (DNS-SD, else the UDP beacon), dnssd or beacon.")
    var discovery: DiscoveryMechanism = .auto

    @Option(name: .customLong("beacon-port"), help: "The UDP port beacons are sent to.")
    var beaconPort: UInt16 = BeaconDatagram.defaultPort

    func validate() throws {
        if let problem = BrokerAnnouncement.problem(withCluster: cluster) { throw ValidationError("--cluster: \(problem)") }
        if announce && noAnnounce { throw ValidationError("--announce and --no-announce contradict each other") }
    }

    /// Starts announcing the bound `endpoints` when asked to or when the dispatch endpoint is reachable
    /// from the network; nil otherwise. Announcing is best effort: a failure is logged, the broker runs on.
    func start(_ endpoints: BrokerEndpoints, security: BrokerSecurity?, logger: Logger) -> BrokerAnnouncer? {
        guard !noAnnounce, announce || !Self.isLoopbackOnly(endpoints.dispatch) else { return nil }
        let announcement = BrokerAnnouncement(
            cluster: cluster, instance: UUID(), dispatchPort: BrokerAnnouncement.port(of: endpoints.dispatch),
            eventsPort: BrokerAnnouncement.port(of: endpoints.events), aggregatorPort: BrokerAnnouncement.port(of: endpoints.aggregator),
            sourcePort: BrokerAnnouncement.port(of: endpoints.source),
            keyFingerprint: security.map { KeyFingerprint.of($0.keyPair.publicKey) } ?? "")
        guard announcement.dispatchPort != 0 else {
            logger.warning("not announcing: the dispatch endpoint \(endpoints.dispatch) is not TCP")
            return nil
        }
        do {
            let announcer = try BrokerAnnouncer(announcement: announcement, mechanism: discovery, interface: interface,
                                                beaconPort: beaconPort, logger: logger)
            FileHandle.standardError.write(Data("broker announced: cluster \(cluster) via \(announcer.mechanisms.map(\.rawValue).joined(separator: " and "))\n".utf8))
            return announcer
        } catch {
            logger.error("cannot announce the broker: \(error)")
            return nil
        }
    }

    static func isLoopbackOnly(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return true }
        let host = endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon]
        return host == "localhost" || host.hasPrefix("127.") || host == "[::1]"
    }
}

/// Holds the announcer started from a ready callback so the command can stop it after the run.
final class AnnouncerSlot: @unchecked Sendable {
    // @unchecked Sendable: `announcer` is only read or written while `lock` is held.
    private let lock = NSLock()
    private var announcer: BrokerAnnouncer?

    func set(_ value: BrokerAnnouncer?) {
        lock.lock()
        announcer = value
        lock.unlock()
    }

    func stop() {
        lock.lock()
        let value = announcer
        announcer = nil
        lock.unlock()
        value?.stop()
    }
}

extension DiscoverOptions {
    /// `worker --discover`: serves whichever broker of the cluster answers, following it when it moves; returns on SIGINT/SIGTERM.
    func serve(_ template: WorkerConfiguration) {
        let logger = Logger(label: "lancompute.worker")
        let worker = DiscoveringWorker(template: template, finder: finder(logger: logger, curve: template.curve.map { CurveSetup(client: $0) }), logger: logger) { [cluster] broker in
            FileHandle.standardError.write(Data("lancompute worker: discovered broker \(broker.dispatchEndpoint) (cluster \(cluster), via \(broker.mechanism.rawValue))\n".utf8))
        }
        let trap = SignalTrap { worker.stop() }
        if let error = worker.run() { fail(error) }
        _ = trap
    }

    /// The discovered broker's events endpoint, or exit LC2050 when it publishes none.
    func eventsEndpoint(command: String, curve: CurveSetup? = nil) -> String {
        let broker = find(command: command, curve: curve)
        guard let events = broker.eventsEndpoint else {
            fail(RuntimeError(.discoveryNoBroker, "the broker at \(broker.dispatchEndpoint) announces no events feed (it runs with --events none)"))
        }
        return events
    }

    /// `feed --discover [FILE]`: the endpoint to feed (the dispatch endpoint; with --at-most-once the
    /// pull source) and the file, which is then the one positional argument, if any.
    func feedEndpoints(positional: String?, file: String?, atMostOnce: Bool, curve: CurveSetup? = nil) -> (endpoint: String, file: String?) {
        let broker = find(command: "feed", curve: curve)
        guard atMostOnce else { return (broker.dispatchEndpoint, file ?? positional) }
        guard let source = broker.sourceEndpoint else {
            fail(RuntimeError(.discoveryNoBroker, "the broker at \(broker.dispatchEndpoint) announces no pull source to feed"))
        }
        return (source, file ?? positional)
    }
}
