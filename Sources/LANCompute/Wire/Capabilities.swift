// The capabilities frame a LANCompute worker adds to READY, in ZMTP metadata encoding.

/// Name/value properties of a worker, encoded like ZMTP metadata:
/// name length (1 byte), name, value length (4 bytes, big-endian), value; repeated.
public struct Capabilities: Equatable, Sendable {
    public var values: [String: String]

    public init(_ values: [String: String] = [:]) { self.values = values }

    public subscript(name: String) -> String? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// Items the worker may hold in flight on this connection (plain MDP workers: 1).
    public var credit: Int { values["credit"].flatMap(Int.init).map { max(1, $0) } ?? 1 }
    /// Most items the worker accepts in one REQUEST (plain MDP workers: 1).
    public var batch: Int { values["batch"].flatMap(Int.init).map { max(1, $0) } ?? 1 }
    /// Whether the peer speaks the LANCompute extensions (item header frame, batched replies).
    public var isLANCompute: Bool { values["protocol"] == MDP.lanComputeProtocol }
    /// `label.K=V` entries as a dictionary.
    public var labels: [String: String] {
        var labels: [String: String] = [:]
        for (name, value) in values where name.hasPrefix("label.") {
            labels[String(name.dropFirst("label.".count))] = value
        }
        return labels
    }

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        for name in values.keys.sorted() {
            let nameBytes = Array(name.utf8.prefix(255))
            let valueBytes = Array(values[name]!.utf8)
            bytes.append(UInt8(nameBytes.count))
            bytes += nameBytes
            bytes.appendBigEndian(UInt32(valueBytes.count))
            bytes += valueBytes
        }
        return bytes
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var reader = ByteReader(bytes)
        var values: [String: String] = [:]
        while !reader.isAtEnd {
            let nameLength = Int(try reader.readUInt8("capability name length"))
            guard nameLength > 0 else { throw WireError("capabilities: empty property name") }
            let name = try reader.readBytes(nameLength, "capability name")
            let valueLength = Int(try reader.readUInt32("capability value length"))
            let value = try reader.readBytes(valueLength, "capability value")
            guard let nameText = String(validating: name, as: UTF8.self),
                  let valueText = String(validating: value, as: UTF8.self) else {
                throw WireError("capabilities: property is not UTF-8")
            }
            values[nameText] = valueText
        }
        self.values = values
    }
}
