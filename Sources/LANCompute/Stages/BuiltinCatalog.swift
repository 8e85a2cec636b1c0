// The names and options of the operators shipped with LANCompute, shared by the validator and the workers.

/// A builtin operator's name and the options it accepts.
public struct BuiltinDescriptor: Sendable, Equatable {
    public var name: String
    /// Option name -> whether it is required.
    public var options: [String: Bool]
    public var summary: String
}

/// Every builtin operator a LANCompute worker can run.
public enum BuiltinCatalog {
    public static let all: [BuiltinDescriptor] = [
        BuiltinDescriptor(name: "identity", options: [:], summary: "passes each item through unchanged"),
        BuiltinDescriptor(name: "upper", options: [:], summary: "uppercases the item (Unicode)"),
        BuiltinDescriptor(name: "lower", options: [:], summary: "lowercases the item (Unicode)"),
        BuiltinDescriptor(
            name: "split-words", options: [:],
            summary: "one output per word: a maximal run of Unicode letters or digits, lowercased"),
        BuiltinDescriptor(name: "sha256", options: [:], summary: "the SHA-256 of the item, as 64 lowercase hex digits"),
        BuiltinDescriptor(
            name: "json-get", options: ["field": true],
            summary: "the value of a (dotted) field of a JSON object item; items without it are dropped"),
        BuiltinDescriptor(
            name: "grep", options: ["pattern": true, "invert": false],
            summary: "keeps items matching a regular expression (or not matching, with invert: true)"),
        BuiltinDescriptor(
            name: "sleep", options: ["duration": true],
            summary: "waits the given duration, then passes the item through (for tests and demos)"),
        BuiltinDescriptor(
            name: "fail", options: ["message": false],
            summary: "fails every attempt (for testing retries and dead-lettering)"),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func descriptor(named name: String) -> BuiltinDescriptor? {
        all.first { $0.name == name }
    }
}
