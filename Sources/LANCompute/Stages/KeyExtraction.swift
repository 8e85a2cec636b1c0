// How the key of an item is found, for group-by placement and keyed aggregates.

import Foundation

/// A key extractor made ready once (its regular expression compiled) and applied to many items.
///
/// Not `Sendable`, because a compiled `Regex` is not: make one per thread that extracts keys.
public struct CompiledKeyExtractor {
    public let extractor: KeyExtractor
    private let regex: Regex<AnyRegexOutput>?

    /// Uses a regular expression compiled already (for `.regex` extractors).
    init(_ extractor: KeyExtractor, compiledRegex: Regex<AnyRegexOutput>) {
        self.extractor = extractor
        regex = compiledRegex
    }

    /// Compiles `extractor`; throws if its regular expression does not compile or has no such group,
    /// the same checks, by the same engine, as the topology loader's.
    public init(_ extractor: KeyExtractor) throws(StageFailure) {
        self.extractor = extractor
        if case .regex(let pattern, let group) = extractor {
            do {
                let compiled = try KeyPattern(pattern)
                try compiled.check(group: group)
                regex = compiled.regex
            } catch {
                throw StageFailure("invalid key pattern: \(error)")
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
    /// A regular expression is compiled once per thread and pattern and kept for the thread's
    /// later calls, so this is cheap on a hot path too. An invalid pattern gives no key.
    public func key(of item: [UInt8]) -> [UInt8]? {
        guard case .regex(let pattern, _) = self else {
            return (try? CompiledKeyExtractor(self))?.key(of: item)
        }
        guard let regex = CompiledRegexCache.regex(for: pattern) else { return nil }
        return CompiledKeyExtractor(self, compiledRegex: regex).key(of: item)
    }
}

/// Compiled key extractors with regular expressions, per thread, since a compiled `Regex` may
/// not be shared between threads.
private enum CompiledRegexCache {
    /// Patterns come from topology files, so a thread sees few; the bound guards against misuse.
    private static let limit = 64
    private static let dictionaryKey = "lancompute.stages.compiled-key-regexes"

    final class Entries {
        var byPattern: [String: Regex<AnyRegexOutput>?] = [:]
    }

    /// The compiled `pattern`, nil if it does not compile.
    static func regex(for pattern: String) -> Regex<AnyRegexOutput>? {
        let dictionary = Thread.current.threadDictionary
        let entries: Entries
        if let existing = dictionary[dictionaryKey] as? Entries {
            entries = existing
        } else {
            entries = Entries()
            dictionary[dictionaryKey] = entries
        }
        if let cached = entries.byPattern[pattern] { return cached }
        if entries.byPattern.count >= limit { entries.byPattern.removeAll() }
        let compiled = (try? KeyPattern(pattern))?.regex
        entries.byPattern[pattern] = .some(compiled)
        return compiled
    }
}

/// A key pattern compiled by Swift `Regex`, with its number of capture groups.
///
/// The topology loader and the run-time extractors both compile patterns here, so a pattern
/// that validates is one that runs: there is no second regular expression engine.
public struct KeyPattern {
    public let regex: Regex<AnyRegexOutput>
    /// Capture groups, numbered and named alike (group 0, the whole match, not counted).
    public let captureGroups: Int

    /// Why a key pattern cannot be used.
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case invalid(pattern: String, reason: String)
        case noSuchGroup(pattern: String, group: Int, groups: Int)

        public var description: String {
            switch self {
            case .invalid(let pattern, let reason):
                return "'\(pattern)' is not a valid regular expression: \(reason)"
            case .noSuchGroup(let pattern, let group, let groups):
                return "group \(group) does not exist: '\(pattern)' has \(groups) capture group\(groups == 1 ? "" : "s")"
            }
        }
    }

    public let pattern: String

    public init(_ pattern: String) throws(Problem) {
        do {
            regex = try Regex(pattern)
        } catch {
            throw .invalid(pattern: pattern, reason: "\(error)")
        }
        self.pattern = pattern
        captureGroups = Self.countGroups(pattern)
    }

    /// Throws unless `group` is 0 (the whole match) or one of the pattern's capture groups.
    public func check(group: Int) throws(Problem) {
        guard group >= 0, group <= captureGroups else {
            throw .noSuchGroup(pattern: pattern, group: group, groups: captureGroups)
        }
    }

    /// Swift `Regex` has no API for the number of groups, but every match lists all of them.
    /// `(?:PATTERN\n)|` matches the empty string through its empty branch and has exactly
    /// PATTERN's groups; the newline ends a `(?x)` comment that would hide `)|`, and `\E` closes
    /// a `\Q` quote left open (a stray `\E` is an error, so it is the second try).
    private static func countGroups(_ pattern: String) -> Int {
        for wrapped in ["(?:\(pattern)\n)|", "(?:\(pattern)\\E\n)|"] {
            if let counter = try? Regex(wrapped), let match = try? counter.firstMatch(in: "") {
                return match.output.count - 1
            }
        }
        // Not expected for a pattern that compiles alone; counting no groups then limits keys to group 0.
        return 0
    }
}
