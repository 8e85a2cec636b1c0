// The UDP beacon datagram (ZRE-style): encoding and the checks a receiver applies.

import Foundation

/// One beacon datagram. Layout (big-endian; Docs/protocol.md §17.3):
///
/// ```
/// "LANC" | version u8 | flags u8 | instance 16 | dispatch u16 | events u16 | aggregator u16 | source u16
///        | cluster length u8 | cluster | key length u8 | key fingerprint
/// ```
///
/// A datagram with the `leaving` flag says the broker stopped: a receiver forgets that instance at once.
public struct BeaconDatagram: Sendable, Equatable {
    public static let magic: [UInt8] = Array("LANC".utf8)
    public static let defaultPort: UInt16 = 5670
    /// The largest datagram: header 30 bytes, cluster up to 63, key up to 255 (well under one Ethernet frame).
    public static let maxSize = 4 + 1 + 1 + 16 + 8 + 1 + 63 + 1 + 255

    public var announcement: BrokerAnnouncement
    public var leaving: Bool

    public init(announcement: BrokerAnnouncement, leaving: Bool = false) {
        self.announcement = announcement
        self.leaving = leaving
    }

    public var bytes: [UInt8] {
        var out = Self.magic
        out.append(BrokerAnnouncement.formatVersion)
        out.append(leaving ? 1 : 0)
        let uuid = announcement.instance.uuid
        withUnsafeBytes(of: uuid) { out.append(contentsOf: $0) }
        out.appendBigEndian(announcement.dispatchPort)
        out.appendBigEndian(announcement.eventsPort)
        out.appendBigEndian(announcement.aggregatorPort)
        out.appendBigEndian(announcement.sourcePort)
        let cluster = Array(announcement.cluster.utf8.prefix(BrokerAnnouncement.maxClusterLength))
        out.append(UInt8(cluster.count))
        out.append(contentsOf: cluster)
        let key = Array(announcement.keyFingerprint.utf8.prefix(255))
        out.append(UInt8(key.count))
        out.append(contentsOf: key)
        return out
    }

    /// Why a datagram was not taken; a receiver counts these and otherwise ignores the datagram.
    public enum Rejection: Error, Equatable, Sendable {
        /// Not a LANCompute beacon (another program on the port).
        case foreignMagic
        /// A LANCompute beacon of a format version this code does not speak.
        case unsupportedVersion(UInt8)
        /// A LANCompute beacon cut short or with a bad field.
        case malformed(String)
    }

    public init(bytes: [UInt8]) throws(Rejection) {
        guard bytes.count >= 4, Array(bytes[0..<4]) == Self.magic else { throw .foreignMagic }
        var reader = ByteReader(Array(bytes[4...]))
        do {
            let version = try reader.readUInt8("version")
            guard version == BrokerAnnouncement.formatVersion else { throw Rejection.unsupportedVersion(version) }
            let flags = try reader.readUInt8("flags")
            let id = try reader.readBytes(16, "instance")
            let uuid = UUID(uuid: (id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7],
                                   id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15]))
            let dispatch = try reader.readUInt16("dispatch port")
            let events = try reader.readUInt16("events port")
            let aggregator = try reader.readUInt16("aggregator port")
            let source = try reader.readUInt16("source port")
            let clusterBytes = try reader.readBytes(Int(try reader.readUInt8("cluster length")), "cluster")
            let keyBytes = try reader.readBytes(Int(try reader.readUInt8("key length")), "key fingerprint")
            guard let cluster = String(validating: clusterBytes, as: UTF8.self),
                  BrokerAnnouncement.problem(withCluster: cluster) == nil else { throw Rejection.malformed("cluster name") }
            guard let key = String(validating: keyBytes, as: UTF8.self) else { throw Rejection.malformed("key fingerprint") }
            guard dispatch != 0 else { throw Rejection.malformed("dispatch port 0") }
            self.init(announcement: BrokerAnnouncement(
                cluster: cluster, instance: uuid, dispatchPort: dispatch, eventsPort: events,
                aggregatorPort: aggregator, sourcePort: source, keyFingerprint: key), leaving: flags & 1 != 0)
        } catch let rejection as Rejection {
            throw rejection
        } catch {
            throw .malformed("\(error)")
        }
    }
}
