// `${VAR}` and `${VAR:-default}` substitution in topology values.

import Foundation

/// Replaces environment references in one scalar value.
///
/// `${NAME}` is the variable's value and an error when it is unset; `${NAME:-text}` is the
/// value, or `text` when the variable is unset or empty; `$${` is a literal `${`. Names are
/// letters, digits and `_`, not starting with a digit. Substituted text is never re-scanned.
enum Substitution {
    struct Problem: Error, Equatable {
        var code: TopologyErrorCode
        /// Offset of the offending `${` in the value, counted in Unicode scalars as YAML columns are.
        var offset: Int
        var message: String
    }

    static func apply(to text: String, environment: [String: String]) -> Result<String, Problem> {
        let scalars = Array(text.unicodeScalars)
        guard scalars.contains("$") else { return .success(text) }
        var output = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "$", index + 2 < scalars.count, scalars[index + 1] == "$", scalars[index + 2] == "{" {
                output.append(contentsOf: "${".unicodeScalars)
                index += 3
                continue
            }
            guard scalar == "$", index + 1 < scalars.count, scalars[index + 1] == "{" else {
                output.append(scalar)
                index += 1
                continue
            }
            guard let close = scalars[(index + 2)...].firstIndex(of: "}") else {
                return .failure(Problem(code: .malformedVariable, offset: index, message: "'${' has no closing '}'"))
            }
            let body = String(String.UnicodeScalarView(scalars[(index + 2)..<close]))
            let name: String
            let fallback: String?
            if let separator = body.range(of: ":-") {
                name = String(body[..<separator.lowerBound])
                fallback = String(body[separator.upperBound...])
            } else {
                name = body
                fallback = nil
            }
            guard isVariableName(name) else {
                let shown = name.isEmpty ? "an empty name" : "'\(name)'"
                return .failure(
                    Problem(
                        code: .malformedVariable, offset: index,
                        message: "${\(body)} has \(shown); a variable name is letters, digits and _, not starting with a digit"))
            }
            if let value = environment[name], !(value.isEmpty && fallback != nil) {
                output.append(contentsOf: value.unicodeScalars)
            } else if let fallback {
                output.append(contentsOf: fallback.unicodeScalars)
            } else {
                return .failure(
                    Problem(
                        code: .unsetVariable, offset: index,
                        message: "environment variable \(name) is not set; set it or write ${\(name):-default}"))
            }
            index = close + 1
        }
        return .success(String(output))
    }

    /// `text` written so that `apply` gives it back unchanged: every `${` becomes `$${`.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "${", with: "$${")
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }
}
