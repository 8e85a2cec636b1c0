// The `split-words` builtin: one output per word of a text item.

extension OperatorSpec {
    static let splitWords = OperatorSpec(
        name: "split-words",
        summary: "one output per word: a maximal run of Unicode letters or digits, lowercased"
    ) { _ in
        { item in SplitWords.words(of: item.payload) }
    }
}

enum SplitWords {
    /// Words are maximal runs of Unicode letters or decimal digits, lowercased.
    static func words(of item: [UInt8]) -> [[UInt8]] {
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
