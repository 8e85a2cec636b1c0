// Writing the Prometheus text exposition format (0.0.4): families, samples, escaping.

import Foundation

/// Builds an exposition document line by line.
struct PrometheusText {
    private(set) var output = ""

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    mutating func family(_ name: String, type: String, help: String) {
        output += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, labels: [(String, String)], value: Int) {
        sample(name, labels: labels, formattedValue: String(value))
    }

    mutating func sample(_ name: String, labels: [(String, String)], value: Double) {
        sample(name, labels: labels, formattedValue: Self.format(value))
    }

    private mutating func sample(_ name: String, labels: [(String, String)], formattedValue: String) {
        output += name
        if !labels.isEmpty {
            output += "{"
            output += labels.map { "\($0.0)=\"\(Self.escapeLabelValue($0.1))\"" }.joined(separator: ",")
            output += "}"
        }
        output += " \(formattedValue)\n"
    }

    /// A float as Prometheus reads it (Go's ParseFloat): `+Inf`, `-Inf`, `NaN`, or a decimal.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// Label values escape backslash, double quote and line feed.
    static func escapeLabelValue(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// Help text escapes backslash and line feed.
    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
