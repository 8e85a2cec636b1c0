// The builtin operators of BuiltinCatalog: their options checked once, then one item at a time.

import Foundation

/// One builtin's work on one item.
typealias BuiltinOperation = ([UInt8]) throws(StageFailure) -> [[UInt8]]

/// Runs a builtin operation; builtins hold no resources.
final class BuiltinHandler: StageHandler {
    private let operation: BuiltinOperation

    init(operation: @escaping BuiltinOperation) {
        self.operation = operation
    }

    func process(_ item: [UInt8]) throws(StageFailure) -> [[UInt8]] {
        try operation(item)
    }

    func close() {}
}

@available(*, unavailable) extension BuiltinHandler: Sendable {}

enum Builtins {
    /// The operation of builtin `name`, with `options` validated against `BuiltinCatalog`.
    static func operation(named name: String, options: [String: String], stageName: String) throws(StageFailure)
        -> BuiltinOperation
    {
        guard let descriptor = BuiltinCatalog.descriptor(named: name) else {
            throw StageFailure(
                "stage '\(stageName)': unknown builtin '\(name)' (known: \(BuiltinCatalog.names.joined(separator: ", ")))")
        }
        for option in options.keys.sorted() where descriptor.options[option] == nil {
            let accepted = descriptor.options.keys.sorted().joined(separator: ", ")
            throw StageFailure(
                "stage '\(stageName)': builtin '\(name)' has no option '\(option)' "
                    + (accepted.isEmpty ? "(it takes none)" : "(accepted: \(accepted))"))
        }
        for (option, required) in descriptor.options.sorted(by: { $0.key < $1.key }) where required {
            if options[option] == nil {
                throw StageFailure("stage '\(stageName)': builtin '\(name)' needs option '\(option)'")
            }
        }

        switch name {
        case "identity":
            return { item in [item] }
        case "upper":
            return { item in [Array(String(decoding: item, as: UTF8.self).uppercased().utf8)] }
        case "lower":
            return { item in [Array(String(decoding: item, as: UTF8.self).lowercased().utf8)] }
        case "split-words":
            return { item in splitWords(item) }
        case "sha256":
            return { item in [Array(SHA256.hexDigest(item).utf8)] }
        case "json-get":
            let field = options["field"]!
            guard !field.isEmpty else {
                throw StageFailure("stage '\(stageName)': builtin 'json-get' needs a non-empty option 'field'")
            }
            return { item in
                guard let value = StageJSON.value(at: field, in: item) else { return [] }
                return [value]
            }
        case "grep":
            let pattern = options["pattern"]!
            let regex: Regex<AnyRegexOutput>
            do {
                regex = try Regex(pattern)
            } catch {
                throw StageFailure("stage '\(stageName)': builtin 'grep' has an invalid pattern '\(pattern)': \(error)")
            }
            let invert: Bool
            // Case-insensitive, as the topology validator accepts it.
            switch (options["invert"] ?? "false").lowercased() {
            case "true": invert = true
            case "false": invert = false
            case let other:
                throw StageFailure(
                    "stage '\(stageName)': builtin 'grep' option 'invert' must be \"true\" or \"false\", not '\(other)'")
            }
            return { item in
                let matches = String(decoding: item, as: UTF8.self).contains(regex)
                return matches != invert ? [item] : []
            }
        case "sleep":
            let literal = options["duration"]!
            guard let duration = DurationLiteral.parse(literal) else {
                throw StageFailure(
                    "stage '\(stageName)': builtin 'sleep' option 'duration' must look like \"250ms\", \"2s\" "
                        + "or \"1.5s\", not '\(literal)'")
            }
            return { item in
                let (seconds, attoseconds) = duration.components
                Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
                return [item]
            }
        case "fail":
            let message = options["message"] ?? "failed by the fail builtin"
            return { _ throws(StageFailure) in throw StageFailure(message) }
        default:
            throw StageFailure("stage '\(stageName)': builtin '\(name)' is in the catalogue but has no implementation")
        }
    }

    /// Words are maximal runs of Unicode letters or decimal digits, lowercased.
    static func splitWords(_ item: [UInt8]) -> [[UInt8]] {
        var words = [[UInt8]]()
        var word = ""
        for character in String(decoding: item, as: UTF8.self) {
            if isWordCharacter(character) {
                word.append(character)
            } else if !word.isEmpty {
                words.append(Array(word.lowercased().utf8))
                word = ""
            }
        }
        if !word.isEmpty { words.append(Array(word.lowercased().utf8)) }
        return words
    }

    private static func isWordCharacter(_ character: Character) -> Bool {
        if character.isASCII {
            return character.isLetter || character.isNumber
        }
        // A grapheme cluster counts by its first scalar, so combining marks stay inside their word.
        guard let first = character.unicodeScalars.first else { return false }
        switch first.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber:
            return true
        default:
            return false
        }
    }
}
