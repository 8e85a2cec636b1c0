// A broker's side of discovery: register with the mDNS daemon, or broadcast beacons where none answers.

import Foundation
import Logging

/// Announces one broker until ``stop()``. With `.auto` it tries DNS-SD first and waits at most
/// `dnssdWait` for the daemon's verdict: on a failure (-65537 at once when no daemon runs) or no
/// verdict yet (a hung daemon holds the call ~25 s) it starts the beacon, so a broker is always
/// findable within a couple of seconds.
public final class BrokerAnnouncer: Sendable {
    public let announcement: BrokerAnnouncement
    /// The mechanisms actually announcing, for the ready line and the tests.
    public let mechanisms: [DiscoveryMechanism]
    private let dnssd: DNSSDAnnouncer?
    private let beacon: BeaconSender?
    private let logger: Logger

    public init(announcement: BrokerAnnouncement, mechanism: DiscoveryMechanism = .auto, interface: String? = nil,
                beaconPort: UInt16 = BeaconDatagram.defaultPort, beaconTargets: [UInt32] = [],
                dnssdWait: Duration = .seconds(2), logger: Logger) throws(DiscoverySocketError) {
        self.announcement = announcement
        self.logger = logger
        var active: [DiscoveryMechanism] = []
        var registered: DNSSDAnnouncer?
        if mechanism != .beacon {
            let name = "\(announcement.cluster) on \(ProcessInfo.processInfo.hostName) \(announcement.instance.uuidString.prefix(8))"
            let announcer = DNSSDAnnouncer(announcement: announcement, instanceName: String(name.prefix(63)),
                                           interface: interface, logger: logger)
            switch announcer.outcome(within: dnssdWait) {
            case .registered(let name):
                logger.info("announced as DNS-SD service '\(name)' (\(DNSSD.serviceType))")
                active.append(.dnssd)
                registered = announcer
            case .failed(let error):
                logger.info("DNS-SD unavailable: \(error)")
                announcer.stop()
            case .pending:
                // Left running: if the daemon recovers, the record appears; the beacon covers the meantime.
                logger.warning("the mDNS daemon did not answer within \(dnssdWait); announcing by beacon as well")
                registered = announcer
            }
        }
        dnssd = registered
        if mechanism == .beacon || (mechanism == .auto && !active.contains(.dnssd)) {
            beacon = try BeaconSender(announcement: announcement, port: beaconPort, interface: interface,
                                      targets: beaconTargets, logger: logger)
            active.append(.beacon)
        } else {
            beacon = nil
        }
        mechanisms = active
    }

    /// Withdraws the DNS-SD record and sends the beacon's "leaving" datagram.
    public func stop() {
        beacon?.stop()
        if let dnssd, !dnssd.stop() {
            logger.notice("the mDNS daemon is not answering; its record of this broker may linger until it expires")
        }
    }
}
