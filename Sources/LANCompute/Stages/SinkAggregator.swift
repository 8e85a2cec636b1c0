// What the sink writes: final outputs turned into lines of bytes, streamed or aggregated (pure, no I/O).

import Foundation

/// Turns final outputs into the sink's output lines, as `SinkSpec.aggregate` and `format` say.
///
/// Lines are bytes, without their newline (the writer adds it): nothing here decodes an output
/// as text to write it, so bytes that are not UTF-8, and NUL bytes, reach the sink unchanged.
///
/// - `none` streams: each output is one line as it arrives (`line(for:format:)`).
///   With format `lines` the line is the output's bytes, exactly. With format `jsonl`
///   an output that is already valid JSON is written as it is, compacted to one line
///   (whitespace outside strings removed; key order and numbers untouched); any other
///   UTF-8 output is written as a JSON string literal; an output that is not UTF-8 is written
///   as `{"output_base64":"<its bytes in base64>"}`, since a JSON string cannot hold it.
/// - `count-by-key`: one line per distinct key (keys compared as bytes, so two keys that differ
///   only in bytes that are not UTF-8 stay apart), most frequent first, ties by ascending key
///   bytes: `{"<keyName>":"the","count":3}` (jsonl) or `the<TAB>3` (lines). In jsonl a key that
///   is not UTF-8 is written as `{"<keyName>_base64":"…","count":3}`; in lines, as its bytes.
/// - `sum-by-key`: one line per distinct key, largest sum first, ties by ascending key:
///   `{"<keyName>":"a","sum":4.5}` or `a<TAB>4.5`, keys as for `count-by-key`. An output's value
///   is the number in its field "value" if it is a JSON object, otherwise its last
///   whitespace-separated field. Integral sums are printed without ".0".
/// - `collect`: one line holding a JSON array of every output as a string, in arrival order
///   (an output that is not UTF-8 as an `{"output_base64":"…"}` object in its place).
///
/// Keyed aggregates take the key from `SinkSpec.key` (the whole output when nil). Outputs
/// without a key are not aggregated and are counted in `unkeyed`; outputs without a number,
/// for `sum-by-key`, in `valueless`.
///
/// Not `Sendable` (it holds a compiled key extractor): the sink owns it on its one thread.
public struct SinkAggregator {
    public let sink: SinkSpec
    private let keyExtractor: CompiledKeyExtractor
    private var lines: [[UInt8]] = []
    // Keyed by bytes, not `String`: a String would turn every invalid sequence into U+FFFD (merging
    // distinct keys) and compares canonically equivalent spellings ("é" and "e\u{301}") as equal.
    private var counts: [[UInt8]: Int] = [:]
    private var sums: [[UInt8]: Double] = [:]
    private var collected: [[UInt8]] = []
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

    /// The line a streaming sink writes for one output, without its newline.
    ///
    /// With `lines` this is the output itself: an output holding a newline byte therefore spans
    /// two lines of the sink (use `jsonl`, or a `push` sink, where outputs may contain newlines).
    public static func line(for output: [UInt8], format: SinkSpec.Format) -> [UInt8] {
        switch format {
        case .lines:
            return output
        case .jsonl:
            guard isValidUTF8(output) else { return base64Object(field: "output_base64", output) }
            if let compact = StageJSON.compacted(output) { return compact }
            return Array(StageJSON.quoted(output).utf8)
        }
    }

    /// True when `bytes` is well-formed UTF-8 (no overlong forms, surrogates or stray bytes).
    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// `{"<field>":"<bytes in base64>"}`: how JSON lines carry bytes that are not UTF-8.
    private static func base64Object(field: String, _ bytes: [UInt8]) -> [UInt8] {
        Array("{\(StageJSON.quoted(field)):\"\(Data(bytes).base64EncodedString())\"}".utf8)
    }

    /// One output as an element of a JSON array: a string, or a base64 object if it is not UTF-8.
    private static func jsonElement(_ output: [UInt8]) -> [UInt8] {
        isValidUTF8(output) ? Array(StageJSON.quoted(output).utf8) : base64Object(field: "output_base64", output)
    }

    /// Takes one final output into the aggregate (with `none`, into the lines `finalLines` returns).
    public mutating func add(_ output: [UInt8]) {
        added += 1
        switch sink.aggregate {
        case .none:
            lines.append(Self.line(for: output, format: sink.format))
        case .collect:
            collected.append(output)
        case .countByKey:
            guard let key = keyExtractor.key(of: output) else {
                unkeyed += 1
                return
            }
            counts[key, default: 0] += 1
        case .sumByKey:
            guard let key = keyExtractor.key(of: output) else {
                unkeyed += 1
                return
            }
            guard let value = Self.value(of: output) else {
                valueless += 1
                return
            }
            sums[key, default: 0] += value
        }
    }

    /// The lines to write when the run ends, each without its newline.
    public func finalLines() -> [[UInt8]] {
        switch sink.aggregate {
        case .none:
            return lines
        case .collect:
            var line: [UInt8] = [UInt8(ascii: "[")]
            for (index, output) in collected.enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                line += Self.jsonElement(output)
            }
            line.append(UInt8(ascii: "]"))
            return [line]
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

    private func keyedLine(key: [UInt8], field: String, value: String) -> [UInt8] {
        switch sink.format {
        case .lines:
            return key + [UInt8(ascii: "\t")] + Array(value.utf8)
        case .jsonl:
            // By hand, so that the key comes first: JSONSerialization does not keep key order.
            let keyField = Self.isValidUTF8(key)
                ? "\(StageJSON.quoted(sink.keyName)):\(StageJSON.quoted(key))"
                : "\(StageJSON.quoted(sink.keyName + "_base64")):\"\(Data(key).base64EncodedString())\""
            return Array("{\(keyField),\"\(field)\":\(value)}".utf8)
        }
    }

    private static func descendingThenByKey<Value: Comparable>(
        _ left: (key: [UInt8], value: Value), _ right: (key: [UInt8], value: Value)
    ) -> Bool {
        if left.value != right.value { return left.value > right.value }
        return left.key.lexicographicallyPrecedes(right.key)
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
