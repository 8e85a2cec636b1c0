// The announcement formats (TXT, beacon), the discovery table's choices, and beacons over loopback.

import Foundation
import Logging
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct DiscoveryTests {
    static let sample = BrokerAnnouncement(
        cluster: "render", instance: UUID(uuidString: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")!, dispatchPort: 5555,
        eventsPort: 5556, aggregatorPort: 5557, sourcePort: 5560, keyFingerprint: "")

    @Test func txtRecordRoundTripsInAnyOrder() throws {
        #expect(BrokerAnnouncement(txtRecord: Self.sample.txtRecord) == Self.sample)
        // DNS-SD does not keep the order of TXT entries.
        var reversed: [UInt8] = []
        for (key, value) in Self.sample.txtPairs.reversed() {
            let entry = Array("\(key)=\(value)".utf8)
            reversed.append(UInt8(entry.count))
            reversed.append(contentsOf: entry)
        }
        #expect(BrokerAnnouncement(txtRecord: reversed) == Self.sample)
        #expect(Self.sample.txtPairs.contains { $0.key == "key" && $0.value.isEmpty })
    }

    @Test func txtRecordOfAnotherVersionOrProgramIsRefused() {
        func record(_ pairs: [(String, String)]) -> [UInt8] {
            pairs.flatMap { pair -> [UInt8] in
                let entry = Array("\(pair.0)=\(pair.1)".utf8)
                return [UInt8(entry.count)] + entry
            }
        }
        let good = Self.sample.txtPairs.map { ($0.key, $0.value) }
        #expect(BrokerAnnouncement(txtRecord: record(good.map { $0.0 == "txtvers" ? ($0.0, "2") : $0 })) == nil)
        #expect(BrokerAnnouncement(txtRecord: record(good.map { $0.0 == "protocol" ? ($0.0, "other/1") : $0 })) == nil)
        #expect(BrokerAnnouncement(txtRecord: record(good.filter { $0.0 != "dispatch" })) == nil)
        #expect(BrokerAnnouncement(txtRecord: [200, 1, 2]) == nil)
    }

    @Test func beaconRoundTripsAndSaysLeaving() throws {
        let datagram = BeaconDatagram(announcement: Self.sample)
        #expect(try BeaconDatagram(bytes: datagram.bytes) == datagram)
        let leaving = BeaconDatagram(announcement: Self.sample, leaving: true)
        #expect(try BeaconDatagram(bytes: leaving.bytes).leaving)
        #expect(datagram.bytes.count <= BeaconDatagram.maxSize)
        #expect(Array(datagram.bytes.prefix(5)) == Array("LANC".utf8) + [1])
    }

    @Test func beaconReceiverNamesWhatItRefuses() {
        let bytes = BeaconDatagram(announcement: Self.sample).bytes
        #expect(throws: BeaconDatagram.Rejection.foreignMagic) { try BeaconDatagram(bytes: Array("ZRE\u{1}".utf8) + bytes.dropFirst(4)) }
        var future = bytes
        future[4] = 9
        #expect(throws: BeaconDatagram.Rejection.unsupportedVersion(9)) { try BeaconDatagram(bytes: future) }
        #expect(throws: BeaconDatagram.Rejection.self) { try BeaconDatagram(bytes: Array(bytes.prefix(20))) }
    }

    @Test func clusterNamesAreChecked() {
        #expect(BrokerAnnouncement.problem(withCluster: "default") == nil)
        #expect(BrokerAnnouncement.problem(withCluster: "") != nil)
        #expect(BrokerAnnouncement.problem(withCluster: "a=b") != nil)
        #expect(BrokerAnnouncement.problem(withCluster: String(repeating: "x", count: 64)) != nil)
    }

    @Test func tableOffersNewestFirstSkipsUnreachableAndForgetsSilentBeacons() {
        var table = DiscoveryTable(beaconExpiry: .seconds(5), retryAfter: .seconds(5))
        let start = ContinuousClock.now
        var old = Self.sample
        old.instance = UUID()
        var restarted = Self.sample
        restarted.dispatchPort = 6555
        let first = DiscoveredBroker(announcement: old, host: "10.0.0.1", mechanism: .beacon)
        let second = DiscoveredBroker(announcement: restarted, host: "10.0.0.1", mechanism: .dnssd)
        table.saw(first, at: start)
        table.saw(second, service: "render on h1", at: start + .seconds(1))
        #expect(table.candidates(at: start + .seconds(1)) == [second, first])
        table.markUnreachable(instance: restarted.instance, at: start + .seconds(1))
        #expect(table.candidates(at: start + .seconds(2)) == [first])
        // The same lingering record again does not make it a candidate; the retry time does.
        table.saw(second, service: "render on h1", at: start + .seconds(3))
        #expect(table.candidates(at: start + .seconds(3)) == [first])
        #expect(table.candidates(at: start + .seconds(6)) == [second])  // the beacon went quiet for 5 s
        table.forget(service: "render on h1")
        #expect(table.candidates(at: start + .seconds(7)).isEmpty)
    }

    @Test func tableTakesAChangedAnnouncementAtOnce() {
        var table = DiscoveryTable()
        let now = ContinuousClock.now
        let broker = DiscoveredBroker(announcement: Self.sample, host: "10.0.0.1", mechanism: .beacon)
        table.saw(broker, at: now)
        table.markUnreachable(instance: Self.sample.instance, at: now)
        var moved = broker
        moved.host = "10.0.0.7"
        table.saw(moved, at: now)
        #expect(table.candidates(at: now) == [moved])
    }

    @Test func beaconsReachAListenerOfTheirClusterOnly() throws {
        let logger = Logger(label: "test.discovery")
        let seen = LockedValue<[DiscoveredBroker]>([])
        let left = LockedValue<Int>(0)
        let listener = try BeaconListener(cluster: "render", port: 0, logger: logger) { broker, leaving in
            if leaving { left.withLock { $0 += 1 } } else { seen.withLock { $0.append(broker) } }
        }
        defer { listener.stop() }
        let loopback: UInt32 = 0x7F00_0001
        var other = Self.sample
        other.cluster = "other"
        other.instance = UUID()
        let foreign = try BeaconSender(announcement: other, port: listener.port, interval: .milliseconds(50),
                                       broadcast: false, targets: [loopback], logger: logger)
        let sender = try BeaconSender(announcement: Self.sample, port: listener.port, interval: .milliseconds(50),
                                      broadcast: false, targets: [loopback], logger: logger)
        let deadline = ContinuousClock.now + .seconds(5)
        while seen.current.count < 3 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        sender.stop()
        foreign.stop()
        while left.current < 1 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        let sightings = seen.current
        #expect(sightings.count >= 3)
        #expect(sightings.allSatisfy { $0.announcement == Self.sample && $0.host == "127.0.0.1" && $0.mechanism == .beacon })
        #expect(left.current == 1, "only the render broker's leaving beacon counts")
    }

    @Test func finderSkipsABeaconedBrokerThatDoesNotAnswer() throws {
        let logger = Logger(label: "test.discovery")
        let finder = try BrokerFinder(options: DiscoveryOptions(cluster: "render", mechanism: .beacon, beaconPort: 0,
                                                                probeTimeout: .milliseconds(200)), logger: logger)
        defer { finder.stop() }
        // Port 9 (discard): nothing listens, as for a crashed broker whose announcement lingers.
        var dead = Self.sample
        dead.dispatchPort = 9
        let sender = try BeaconSender(announcement: dead, port: finder.beaconPort!, interval: .milliseconds(100),
                                      broadcast: false, targets: [0x7F00_0001], logger: logger)
        defer { sender.stop() }
        #expect(finder.find(within: .seconds(1)) == nil)
        #expect(finder.known.map(\.announcement.dispatchPort) == [9])
    }

    @Test func threadStopsWithinItsBoundEvenWhenStuck() {
        let release = DispatchSemaphore(value: 0)
        let thread = DiscoveryThread(name: "stuck") { _ in release.wait() }
        let started = ContinuousClock.now
        #expect(!thread.stop(within: .milliseconds(200)))
        #expect(ContinuousClock.now - started < .seconds(2))
        release.signal()
        #expect(thread.stop(within: .seconds(2)))
    }
}
