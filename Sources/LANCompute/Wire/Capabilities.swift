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

extension Capabilities {
    /// Properties no frame may lose: without them a worker cannot be served as it asked.
    static let essentialNames: Set<String> = [
        "protocol", "node", "host", "credit", "batch", "slots", "pid", "arch", "os", "cores", "memory", "gpu",
    ]

    /// The size of ``encoded()``.
    public var encodedCount: Int {
        values.reduce(0) { $0 + 1 + min($1.key.utf8.count, 255) + 4 + $1.value.utf8.count }
    }

    /// These capabilities cut to fit `toBytes` encoded: values over `valueBytes` are cut (at a
    /// character boundary); then, while the frame is still too large, properties are left out,
    /// per-GPU ones (`gpu.N.*`) first, then other optional ones, then labels, each group from the
    /// last name in sorted order. The essential properties stay. `trimmed` names what was cut or left out.
    public func bounded(toBytes limit: Int, valueBytes: Int) -> (capabilities: Capabilities, trimmed: [String]) {
        var result = self
        var trimmed: [String] = []
        for (name, value) in values.sorted(by: { $0.key < $1.key }) where value.utf8.count > valueBytes {
            var cut = String.UnicodeScalarView()
            var size = 0
            for scalar in value.unicodeScalars {
                let width = String(scalar).utf8.count
                if size + width > valueBytes { break }
                cut.append(scalar)
                size += width
            }
            result[name] = String(cut)
            trimmed.append(name)
        }
        func group(_ name: String) -> Int {
            if name.hasPrefix("label.") { return 0 }
            let parts = name.split(separator: ".")
            if parts.count >= 3, parts[0] == "gpu", Int(parts[1]) != nil { return 2 }
            return 1
        }
        let droppable = result.values.keys.filter { !Self.essentialNames.contains($0) }
            .sorted { (group($0), $0) > (group($1), $1) }
        var size = result.encodedCount
        for name in droppable where size > limit {
            size -= 1 + min(name.utf8.count, 255) + 4 + result.values[name]!.utf8.count
            result.values[name] = nil
            if !trimmed.contains(name) { trimmed.append(name) }
        }
        return (result, trimmed)
    }
}

extension Capabilities {
    /// In a worker's capabilities refresh: the credit this connection now asks for (Docs/protocol.md 7.7).
    static let creditName = "credit"
    /// In a worker's refresh: the round trip it measured on this connection, in microseconds.
    static let roundTripName = "rtt.us"
    /// In a worker's refresh, a probe the broker echoes at once; in the broker's HEARTBEAT, the echo.
    static let probeName = "probe"

    /// The credit a refresh asks for: a decimal ≥ 0 (0: send nothing more for now); nil when absent or not a number.
    public var refreshedCredit: Int? {
        values[Self.creditName].flatMap(Int.init).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// The round trip a refresh reports; nil when absent or not a number.
    public var roundTrip: Duration? {
        values[Self.roundTripName].flatMap(Int.init).flatMap { $0 >= 0 ? Duration.microseconds($0) : nil }
    }

    /// A probe's token; nil when absent or not a decimal.
    public var probe: UInt64? { values[Self.probeName].flatMap { UInt64($0) } }

    /// A worker's refresh on one stage connection: a probe, a new credit and the round trip behind it, or both.
    static func creditRefresh(probe: UInt64?, credit: Int?, roundTrip: Duration?) -> Capabilities {
        var capabilities = Capabilities()
        if let probe { capabilities[probeName] = String(probe) }
        if let credit {
            capabilities[creditName] = String(max(0, credit))
            if let roundTrip {
                let (whole, atto) = roundTrip.components
                capabilities[roundTripName] = String(whole * 1_000_000 + atto / 1_000_000_000_000)
            }
        }
        return capabilities
    }
}
