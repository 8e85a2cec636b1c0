// A small JSON writer that keeps keys in the order given, for feed messages people read.

import Foundation

/// A JSON value built in code; objects keep their keys in insertion order.
enum JSONText: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case number(Double)
    case bool(Bool)
    case array([JSONText])
    case object([(String, JSONText)])
    case null

    static func == (lhs: JSONText, rhs: JSONText) -> Bool { lhs.serialized == rhs.serialized }

    static func int(_ value: Int) -> JSONText { .integer(Int64(value)) }

    /// An object from a dictionary, keys sorted so the output is stable.
    static func sortedObject(_ dictionary: [String: String]) -> JSONText {
        .object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }

    static func sortedObject(_ dictionary: [String: Int]) -> JSONText {
        .object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })
    }

    var serialized: String {
        var output = ""
        write(to: &output)
        return output
    }

    private func write(to output: inout String) {
        switch self {
        case .string(let value): Self.writeString(value, to: &output)
        case .integer(let value): output += String(value)
        case .unsigned(let value): output += String(value)
        case .number(let value):
            // JSON has no infinities or NaN.
            if !value.isFinite { output += "null" }
            else if value == value.rounded(), abs(value) < 1e15 { output += String(Int64(value)) }
            else { output += String(value) }
        case .bool(let value): output += value ? "true" : "false"
        case .null: output += "null"
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                element.write(to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { output += "," }
                Self.writeString(key, to: &output)
                output += ":"
                value.write(to: &output)
            }
            output += "}"
        }
    }

    private static func writeString(_ value: String, to output: inout String) {
        output += StageJSON.quoted(value)
    }
}
