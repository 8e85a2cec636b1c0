// JSON as the stages read and write it: string escaping, validity, compaction and field lookup.

import Foundation

enum StageJSON {
    /// `text` as a JSON string literal: quotes, backslashes and control characters escaped.
    static func quoted(_ text: String) -> String {
        var result = "\""
        result.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        result += "\""
        return result
    }

    /// The bytes as a JSON string literal (invalid UTF-8 replaced by U+FFFD).
    static func quoted(_ bytes: [UInt8]) -> String {
        quoted(String(decoding: bytes, as: UTF8.self))
    }

    /// Parses `bytes` as any JSON value (fragments allowed); nil if it is not valid JSON.
    static func parse(_ bytes: [UInt8]) -> Any? {
        // Cheap rejection of most plain text before handing it to the parser.
        guard let first = bytes.first(where: { !isWhitespace($0) }) else { return nil }
        switch first {
        case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "\""), UInt8(ascii: "-"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            return try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        default:
            return nil
        }
    }

    /// If `bytes` is valid JSON, the same text without insignificant whitespace (key order and
    /// number spelling kept); otherwise nil.
    static func compacted(_ bytes: [UInt8]) -> [UInt8]? {
        guard parse(bytes) != nil else { return nil }
        var result = [UInt8]()
        result.reserveCapacity(bytes.count)
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                result.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if !isWhitespace(byte) {
                result.append(byte)
                if byte == UInt8(ascii: "\"") { inString = true }
            }
        }
        return result
    }

    /// The value at a dotted path (`user.name`, `items.0`) of a JSON object item: strings as their
    /// text, other values as compact JSON. nil if the item is not an object or the path is missing.
    static func value(at path: String, in item: [UInt8]) -> [UInt8]? {
        guard let root = parse(item), root is [String: Any] else { return nil }
        var current: Any = root
        for component in path.split(separator: ".", omittingEmptySubsequences: false) {
            if let object = current as? [String: Any], let next = object[String(component)] {
                current = next
            } else if let array = current as? [Any], let index = Int(component), array.indices.contains(index) {
                current = array[index]
            } else {
                return nil
            }
        }
        return render(current)
    }

    /// A parsed value as output bytes: a string as its text, anything else as compact JSON.
    static func render(_ value: Any) -> [UInt8]? {
        if let string = value as? String { return Array(string.utf8) }
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
        else { return nil }
        return Array(data)
    }

    /// Parses `bytes` as a JSON array whose elements are all strings; nil otherwise.
    static func stringArray(_ bytes: [UInt8]) -> [[UInt8]]? {
        guard let array = parse(bytes) as? [Any] else { return nil }
        var strings = [[UInt8]]()
        strings.reserveCapacity(array.count)
        for element in array {
            guard let string = element as? String else { return nil }
            strings.append(Array(string.utf8))
        }
        return strings
    }

    /// The start of `bytes` as quoted text, for error messages.
    static func excerpt(_ bytes: [UInt8], limit: Int = 200) -> String {
        let text = String(decoding: bytes.prefix(limit), as: UTF8.self)
        return quoted(text) + (bytes.count > limit ? " (\(bytes.count) bytes, cut)" : "")
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
