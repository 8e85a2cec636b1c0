// How the key of an item is found, for group-by placement and keyed aggregates.

/// A key extractor made ready once (its regular expression compiled) and applied to many items.
///
/// Not `Sendable`, because a compiled `Regex` is not: make one per thread that extracts keys.
public struct CompiledKeyExtractor {
    public let extractor: KeyExtractor
    private let regex: Regex<AnyRegexOutput>?

    /// Compiles `extractor`; throws if its regular expression does not compile.
    public init(_ extractor: KeyExtractor) throws(StageFailure) {
        self.extractor = extractor
        if case .regex(let pattern, _) = extractor {
            do {
                regex = try Regex(pattern)
            } catch {
                throw StageFailure("invalid key pattern '\(pattern)': \(error)")
            }
        } else {
            regex = nil
        }
    }

    /// The key of `item`, or nil when it has none: not a JSON object or no such field (`jsonField`),
    /// no match or no such group (`regex`), too few fields (`field`).
    ///
    /// A JSON string field gives its text; any other JSON value gives its compact JSON.
    /// Fields are separated by runs of ASCII whitespace.
    public func key(of item: [UInt8]) -> [UInt8]? {
        switch extractor {
        case .item:
            return item
        case .jsonField(let path):
            return StageJSON.value(at: path, in: item)
        case .regex(_, let group):
            guard let regex, group >= 0,
                let match = String(decoding: item, as: UTF8.self).firstMatch(of: regex),
                group < match.output.count,
                let captured = match.output[group].substring
            else { return nil }
            return Array(captured.utf8)
        case .field(let index):
            guard index >= 0 else { return nil }
            var fieldIndex = 0
            var position = item.startIndex
            while position < item.endIndex {
                while position < item.endIndex, isFieldSeparator(item[position]) { position += 1 }
                guard position < item.endIndex else { break }
                let start = position
                while position < item.endIndex, !isFieldSeparator(item[position]) { position += 1 }
                if fieldIndex == index { return Array(item[start..<position]) }
                fieldIndex += 1
            }
            return nil
        }
    }

    private func isFieldSeparator(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}

extension KeyExtractor {
    /// The key of `item`, or nil when it has none (see `CompiledKeyExtractor.key(of:)`).
    ///
    /// This compiles a regular expression on every call; for many items make a
    /// `CompiledKeyExtractor` once. An invalid pattern gives no key.
    public func key(of item: [UInt8]) -> [UInt8]? {
        (try? CompiledKeyExtractor(self))?.key(of: item)
    }
}
