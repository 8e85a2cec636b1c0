// The beacon sender and listener: one thread each, started and joined by their owners.

import Foundation
import Logging

/// Broadcasts a broker's ``BeaconDatagram`` every `interval` on every broadcast-capable IPv4
/// interface (or only `interface`) unless `broadcast` is false, plus to any explicit `targets`
/// (unicast addresses, host byte order); says "leaving" on stop.
/// Interfaces are read again at every beat, so an address that changes is followed.
public final class BeaconSender: Sendable {
    private let thread: DiscoveryThread

    public init(announcement: BrokerAnnouncement, port: UInt16 = BeaconDatagram.defaultPort, interval: Duration = .seconds(1),
                interface: String? = nil, broadcast: Bool = true, targets: [UInt32] = [], logger: Logger) throws(DiscoverySocketError) {
        let socket = try UDPSocket(broadcast: true, bindPort: nil)
        let box = SocketHandOver(socket)
        thread = DiscoveryThread(name: "lancompute-beacon") { thread in
            let socket = box.take()
            let beat = BeaconDatagram(announcement: announcement).bytes
            var reported: Set<String> = []
            func sendAll(_ bytes: [UInt8]) {
                var destinations = targets
                for candidate in IPv4Interface.all() where broadcast && !candidate.isLoopback && (interface == nil || candidate.name == interface) {
                    if let broadcast = candidate.broadcast { destinations.append(broadcast) }
                }
                if destinations.isEmpty, reported.insert("none").inserted {
                    logger.warning("no broadcast-capable interface\(interface.map { " named \($0)" } ?? ""): the beacon reaches no one until one comes up")
                }
                for destination in destinations {
                    if let code = socket.send(bytes, to: destination, port: port),
                       reported.insert("\(destination)/\(code)").inserted {
                        logger.warning("beacon to \(IPv4Interface.text(destination)):\(port) failed: \(String(cString: strerror(code)))")
                    }
                }
            }
            while !thread.isStopRequested {
                sendAll(beat)
                _ = thread.poll([], timeout: interval)
            }
            sendAll(BeaconDatagram(announcement: announcement, leaving: true).bytes)
        }
    }

    /// Sends the "leaving" beacon and joins the thread.
    public func stop() { thread.stop(within: .seconds(2)) }
}

/// Listens on the beacon port and reports each LANCompute beacon of `cluster`; ignores other
/// programs' datagrams, other format versions, other clusters, and with `interface` any
/// sender outside that interface's subnet.
public final class BeaconListener: Sendable {
    private let thread: DiscoveryThread
    /// The bound port (the one asked for, or the one the system chose for port 0).
    public let port: UInt16

    /// `onSighting(broker, leaving)` runs on the listener's thread.
    public init(cluster: String, port: UInt16 = BeaconDatagram.defaultPort, interface: String? = nil, logger: Logger,
                onSighting: @escaping @Sendable (DiscoveredBroker, _ leaving: Bool) -> Void) throws(DiscoverySocketError) {
        let socket = try UDPSocket(broadcast: false, bindPort: port)
        self.port = socket.boundPort
        let box = SocketHandOver(socket)
        thread = DiscoveryThread(name: "lancompute-beacon-listener") { thread in
            let socket = box.take()
            var ignored = 0
            while !thread.isStopRequested {
                guard !thread.poll([socket.descriptor], timeout: .seconds(1)).isEmpty else { continue }
                while let (bytes, source) = socket.receive() {
                    if let interface {
                        let subnets = IPv4Interface.all().filter { $0.name == interface }
                        guard subnets.contains(where: { $0.contains(source) }) else { continue }
                    }
                    do {
                        let datagram = try BeaconDatagram(bytes: bytes)
                        guard datagram.announcement.cluster == cluster else { continue }
                        onSighting(DiscoveredBroker(announcement: datagram.announcement, host: IPv4Interface.text(source),
                                                    mechanism: .beacon), datagram.leaving)
                    } catch {
                        ignored += 1
                        if ignored == 1 || ignored % 1000 == 0 {
                            logger.debug("ignored \(ignored) datagram(s) on UDP \(port), the last from \(IPv4Interface.text(source)): \(error)")
                        }
                    }
                }
            }
        }
    }

    public func stop() { thread.stop(within: .seconds(2)) }
}

/// Moves a socket made on the caller's thread to the actor's thread, which is its only user from then on.
final class SocketHandOver: @unchecked Sendable {
    // @unchecked Sendable: written once in init, read once by `take()` on the actor's thread; the
    // creating thread never touches the socket after handing it over.
    private var socket: UDPSocket?
    init(_ socket: UDPSocket) { self.socket = socket }
    func take() -> UDPSocket {
        defer { socket = nil }
        return socket!
    }
}
