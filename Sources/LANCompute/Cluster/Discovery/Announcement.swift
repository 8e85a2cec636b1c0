// What a broker announces on the LAN (cluster, instance, ports, key fingerprint), and its DNS-SD TXT form.

import Foundation

/// A broker's announcement, the same whether it travels as a DNS-SD service or a UDP beacon.
/// The host is never part of it: a receiver takes the address the announcement came from
/// (the beacon's source address, the DNS-SD service's A record), which is right even when
/// the broker binds `0.0.0.0` and cannot know which of its addresses a peer reaches.
public struct BrokerAnnouncement: Sendable, Equatable {
    /// The announcement format this code speaks (TXT `txtvers`, the beacon's version byte).
    public static let formatVersion: UInt8 = 1
    /// The dispatch protocol a client of this broker speaks (TXT `protocol`).
    public static let protocolName = "lancompute/1"
    /// The cluster a client joins when it names none.
    public static let defaultCluster = "default"
    /// The longest cluster name (it must fit one length byte of the beacon and one DNS label).
    public static let maxClusterLength = 63

    public var cluster: String
    /// Unique per broker process, so a restarted broker is told apart from the one before it.
    public var instance: UUID
    public var dispatchPort: UInt16
    /// Zero when the broker publishes no events feed.
    public var eventsPort: UInt16
    public var aggregatorPort: UInt16
    /// Zero when the broker's source is not `pull`.
    public var sourcePort: UInt16
    /// The broker key's fingerprint (``KeyFingerprint``); empty when the broker has no keys.
    public var keyFingerprint: String

    public init(cluster: String, instance: UUID, dispatchPort: UInt16, eventsPort: UInt16 = 0,
                aggregatorPort: UInt16 = 0, sourcePort: UInt16 = 0, keyFingerprint: String = "") {
        self.cluster = cluster
        self.instance = instance
        self.dispatchPort = dispatchPort
        self.eventsPort = eventsPort
        self.aggregatorPort = aggregatorPort
        self.sourcePort = sourcePort
        self.keyFingerprint = keyFingerprint
    }

    /// Nil when `name` can name a cluster, else why not.
    public static func problem(withCluster name: String) -> String? {
        if name.isEmpty { return "a cluster name cannot be empty" }
        if name.utf8.count > maxClusterLength { return "cluster name '\(name)' is longer than \(maxClusterLength) bytes" }
        if name.contains(where: { $0 == "=" || $0.isWhitespace || $0.isNewline }) {
            return "cluster name '\(name)' contains '=' or white space"
        }
        return nil
    }

    /// The port of a `tcp://HOST:PORT` endpoint, as a broker reports its bound endpoints.
    public static func port(of endpoint: String?) -> UInt16 {
        guard let endpoint, endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return 0 }
        return UInt16(endpoint[endpoint.index(after: colon)...]) ?? 0
    }

    // MARK: DNS-SD TXT record

    /// The TXT record's key/value pairs (DNS-SD keeps no order: see Docs/protocol.md).
    public var txtPairs: [(key: String, value: String)] {
        [("txtvers", String(Self.formatVersion)), ("protocol", Self.protocolName), ("cluster", cluster),
         ("instance", instance.uuidString), ("dispatch", String(dispatchPort)), ("events", String(eventsPort)),
         ("aggregator", String(aggregatorPort)), ("source", String(sourcePort)), ("key", keyFingerprint)]
    }

    /// The TXT record in wire form: each pair as one length byte then `key=value` (RFC 6763 §6).
    public var txtRecord: [UInt8] {
        var record: [UInt8] = []
        for (key, value) in txtPairs {
            let entry = Array("\(key)=\(value)".utf8)
            record.append(UInt8(entry.count))
            record.append(contentsOf: entry)
        }
        return record
    }

    /// Parses a TXT record; nil when it is not a LANCompute announcement this code understands
    /// (another `txtvers` or `protocol`, a missing or malformed field).
    public init?(txtRecord: [UInt8]) {
        var pairs: [String: String] = [:]
        var index = 0
        while index < txtRecord.count {
            let length = Int(txtRecord[index])
            index += 1
            guard index + length <= txtRecord.count else { return nil }
            let entry = String(decoding: txtRecord[index..<index + length], as: UTF8.self)
            index += length
            guard let equals = entry.firstIndex(of: "=") else { continue }  // a boolean attribute: none of ours
            let key = entry[..<equals].lowercased()
            if pairs[key] == nil { pairs[key] = String(entry[entry.index(after: equals)...]) }  // RFC 6763 §6.4: first wins
        }
        guard pairs["txtvers"] == String(Self.formatVersion), pairs["protocol"] == Self.protocolName,
              let cluster = pairs["cluster"], Self.problem(withCluster: cluster) == nil,
              let instance = pairs["instance"].flatMap(UUID.init(uuidString:)),
              let dispatch = pairs["dispatch"].flatMap(UInt16.init), dispatch != 0 else { return nil }
        self.init(cluster: cluster, instance: instance, dispatchPort: dispatch,
                  eventsPort: pairs["events"].flatMap(UInt16.init) ?? 0,
                  aggregatorPort: pairs["aggregator"].flatMap(UInt16.init) ?? 0,
                  sourcePort: pairs["source"].flatMap(UInt16.init) ?? 0,
                  keyFingerprint: pairs["key"] ?? "")
    }
}

/// A broker announcement as a client saw it: where from, by which mechanism, and when.
public struct DiscoveredBroker: Sendable, Equatable {
    public enum Mechanism: String, Sendable {
        case dnssd
        case beacon
    }

    public var announcement: BrokerAnnouncement
    /// The IPv4 address the announcement came from, dotted.
    public var host: String
    public var mechanism: Mechanism

    public init(announcement: BrokerAnnouncement, host: String, mechanism: Mechanism) {
        self.announcement = announcement
        self.host = host
        self.mechanism = mechanism
    }

    public var dispatchEndpoint: String { "tcp://\(host):\(announcement.dispatchPort)" }
    public var eventsEndpoint: String? { announcement.eventsPort == 0 ? nil : "tcp://\(host):\(announcement.eventsPort)" }
    public var aggregatorEndpoint: String? { announcement.aggregatorPort == 0 ? nil : "tcp://\(host):\(announcement.aggregatorPort)" }
    public var sourceEndpoint: String? { announcement.sourcePort == 0 ? nil : "tcp://\(host):\(announcement.sourcePort)" }
}
