// What the sink writes: final outputs turned into lines, streamed or aggregated (pure, no I/O).

/// Turns final outputs into the sink's output lines, as `SinkSpec.aggregate` and `format` say.
///
/// - `none` streams: each output is one line as it arrives (`line(for:format:)`).
///   With format `lines` the line is the output's bytes as UTF-8 text. With format `jsonl`
///   an output that is already valid JSON is written as it is, compacted to one line
///   (whitespace outside strings removed; key order and numbers untouched); any other
///   output is written as a JSON string literal.
/// - `count-by-key`: one line per distinct key, most frequent first, ties by ascending key
///   (compared as UTF-8 bytes): `{"<keyName>":"the","count":3}` (jsonl) or `the<TAB>3` (lines).
/// - `sum-by-key`: one line per distinct key, largest sum first, ties by ascending key:
///   `{"<keyName>":"a","sum":4.5}` or `a<TAB>4.5`. An output's value is the number in its field
///   "value" if it is a JSON object, otherwise its last whitespace-separated field. Integral
///   sums are printed without ".0".
/// - `collect`: one line holding a JSON array of every output as a string, in arrival order.
///
/// Keyed aggregates take the key from `SinkSpec.key` (the whole output when nil). Outputs
/// without a key are not aggregated and are counted in `unkeyed`; outputs without a number,
/// for `sum-by-key`, in `valueless`.
///
/// Not `Sendable` (it holds a compiled key extractor): the sink owns it on its one thread.
public struct SinkAggregator {
    public let sink: SinkSpec
    private let keyExtractor: CompiledKeyExtractor
    private var lines: [String] = []
    private var counts: [String: Int] = [:]
    private var sums: [String: Double] = [:]
    private var collected: [String] = []
    /// Outputs whose key could not be found; they are left out of keyed aggregates.
    public private(set) var unkeyed = 0
    /// Outputs of a `sum-by-key` sink that had a key but no number; they are left out of the sums.
    public private(set) var valueless = 0
    /// Outputs added so far.
    public private(set) var added = 0

    /// Throws if the sink's key cannot be compiled: a sink that could find no key would
    /// otherwise write an empty aggregate and report success.
    public init(_ sink: SinkSpec) throws(StageFailure) {
        self.sink = sink
        do {
            keyExtractor = try CompiledKeyExtractor(sink.key ?? .item)
        } catch {
            throw StageFailure("sink key: \(error.message)")
        }
    }

    /// True when each output becomes a line at once (`aggregate: none`): write
    /// `line(for:format:)` as outputs arrive instead of holding them until the end.
    public var isStreaming: Bool { sink.aggregate == .none }

    /// The line a streaming sink writes for one output.
    public static func line(for output: [UInt8], format: SinkSpec.Format) -> String {
        switch format {
        case .lines:
            return String(decoding: output, as: UTF8.self)
        case .jsonl:
            if let compact = StageJSON.compacted(output) { return String(decoding: compact, as: UTF8.self) }
            return StageJSON.quoted(output)
        }
    }

    /// Takes one final output into the aggregate (with `none`, into the lines `finalLines` returns).
    public mutating func add(_ output: [UInt8]) {
        added += 1
        switch sink.aggregate {
        case .none:
            lines.append(Self.line(for: output, format: sink.format))
        case .collect:
            collected.append(String(decoding: output, as: UTF8.self))
        case .countByKey:
            guard let key = keyExtractor.key(of: output) else {
                unkeyed += 1
                return
            }
            counts[String(decoding: key, as: UTF8.self), default: 0] += 1
        case .sumByKey:
            guard let key = keyExtractor.key(of: output) else {
                unkeyed += 1
                return
            }
            guard let value = Self.value(of: output) else {
                valueless += 1
                return
            }
            sums[String(decoding: key, as: UTF8.self), default: 0] += value
        }
    }

    /// The lines to write when the run ends.
    public func finalLines() -> [String] {
        switch sink.aggregate {
        case .none:
            return lines
        case .collect:
            return ["[" + collected.map(StageJSON.quoted).joined(separator: ",") + "]"]
        case .countByKey:
            return counts.sorted(by: Self.descendingThenByKey).map { key, count in
                keyedLine(key: key, field: "count", value: String(count))
            }
        case .sumByKey:
            return sums.sorted(by: Self.descendingThenByKey).map { key, sum in
                keyedLine(key: key, field: "sum", value: Self.format(sum))
            }
        }
    }

    private func keyedLine(key: String, field: String, value: String) -> String {
        switch sink.format {
        case .lines:
            return key + "\t" + value
        case .jsonl:
            // By hand, so that the key comes first: JSONSerialization does not keep key order.
            return "{\(StageJSON.quoted(sink.keyName)):\(StageJSON.quoted(key)),\"\(field)\":\(value)}"
        }
    }

    private static func descendingThenByKey<Value: Comparable>(
        _ left: (key: String, value: Value), _ right: (key: String, value: Value)
    ) -> Bool {
        if left.value != right.value { return left.value > right.value }
        return left.key.utf8.lexicographicallyPrecedes(right.key.utf8)
    }

    /// The number an output contributes to `sum-by-key`, if it has one.
    static func value(of output: [UInt8]) -> Double? {
        if let object = StageJSON.parse(output) as? [String: Any] {
            guard let field = object["value"] else { return nil }
            if let string = field as? String { return finite(Double(string)) }
            if field is Bool { return nil }
            guard let number = StageJSON.render(field) else { return nil }
            return finite(Double(String(decoding: number, as: UTF8.self)))
        }
        let text = String(decoding: output, as: UTF8.self)
        guard let last = text.split(whereSeparator: { $0.isWhitespace }).last else { return nil }
        return finite(Double(last))
    }

    private static func finite(_ value: Double?) -> Double? {
        guard let value, value.isFinite else { return nil }
        return value
    }

    /// A sum as JSON: integral values without ".0", others in the shortest form that reads back the same.
    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 9.0e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
