// Reads a topology file (schema version 1) into the validated model, collecting every problem with its position.

import Foundation
import Yams

/// Loads topology files.
///
/// Every problem in the file is reported, not only the first, each at the line and column an
/// editor should jump to. A topology that loads without errors is valid: stage names are unique,
/// `from` links name existing stages and form no cycle, endpoints, sizes and durations parse, and
/// builtin operators and their options exist.
public enum TopologyLoader {
    /// The schema versions this loader reads.
    public static let supportedVersions = [1]

    /// Loads and validates the topology file at `path`.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(TopologyErrors) -> Topology {
        let text: String
        do {
            text = try readText(path: path)
        } catch {
            let location = SourceLocation(file: path, line: 1, column: 1)
            throw TopologyErrors([
                TopologyDiagnostic(location: location, code: .unreadableFile, message: "cannot read file: \(error.reason)")
            ])
        }
        return try load(yaml: text, file: path, environment: environment)
    }

    /// Loads and validates topology text; `file` is the name diagnostics carry.
    public static func load(
        yaml: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(TopologyErrors) -> Topology {
        let reader = TopologyReader(file: file, environment: environment)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw TopologyErrors([reader.diagnostic(forYAMLError: error, yaml: yaml)])
        }
        guard let root else {
            throw TopologyErrors([
                TopologyDiagnostic(
                    location: SourceLocation(file: file, line: 1, column: 1), code: .emptyDocument,
                    message: "the file holds no topology; start with 'version: 1'")
            ])
        }
        let topology = reader.readTopology(root)
        guard reader.diagnostics.isEmpty, let topology else {
            throw TopologyErrors(reader.diagnostics)
        }
        return topology
    }

    private struct ReadError: Error {
        var reason: String
    }

    private static func readText(path: String) throws(ReadError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ReadError(reason: "no such file")
        }
        if isDirectory.boolValue { throw ReadError(reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReadError(reason: "permission denied or unreadable")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ReadError(reason: "it is not UTF-8 text")
        }
        return text
    }
}

/// The keys of each mapping in schema version 1, in the order the reference documents them.
enum Schema {
    static let root = ["version", "name", "description", "source", "stages", "sink", "broker"]
    static let source = ["file", "stdin", "pull", "generate", "format"]
    static let sourceKinds = ["file", "stdin", "pull", "generate"]
    static let generate = ["count", "size"]
    static let stage = [
        "name", "builtin", "options", "exec", "from", "replicas", "credit", "requires", "prefers", "group-by",
        "priority", "timeout", "max-attempts", "deadline", "chain", "spread", "breaker",
    ]
    static let breaker = ["failures", "window", "cooldown"]
    static let exec = ["command", "mode", "output", "working-directory", "environment"]
    static let requirements = ["arch", "os", "gpu", "min-gpus", "gpu-model", "min-gpu-memory", "min-memory", "min-cores", "labels"]
    static let key = ["json", "regex", "group", "field"]
    static let sink = ["file", "stdout", "push", "format", "aggregate", "key", "key-name"]
    static let sinkKinds = ["file", "stdout", "push"]
    static let broker = ["bind", "events", "aggregator", "heartbeat-interval", "heartbeat-liveness", "queue-limit"]
    /// Words that `from:` gives a meaning of its own, so no stage may take them as its name.
    static let reservedStageNames = ["source", "sink"]
    static let architectures = ["x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"]
    static let operatingSystems = ["linux", "macos"]
}

/// The keys of one YAML mapping, checked against the keys it may have.
struct Fields {
    var node: Node
    var path: String
    private(set) var entries: [String: (key: Node, value: Node)] = [:]
    /// Keys in file order.
    private(set) var order: [String] = []

    init(node: Node, path: String) {
        self.node = node
        self.path = path
    }

    mutating func add(_ name: String, key: Node, value: Node) {
        entries[name] = (key, value)
        order.append(name)
    }

    subscript(_ name: String) -> Node? { entries[name]?.value }

    func keyNode(_ name: String) -> Node? { entries[name]?.key }

}

/// One pass over a composed YAML document; collects diagnostics instead of stopping at the first.
final class TopologyReader {
    let file: String
    let environment: [String: String]
    private(set) var diagnostics: [TopologyDiagnostic] = []
    private var sourceMap = SourceMap()

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    // MARK: Reporting

    func location(_ node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func report(_ code: TopologyErrorCode, at node: Node, _ message: String) {
        report(code, at: location(node), message)
    }

    func report(_ code: TopologyErrorCode, at location: SourceLocation, _ message: String) {
        let diagnostic = TopologyDiagnostic(location: location, code: code, message: message)
        // A block merged in several places would otherwise repeat its problems once per use.
        guard !diagnostics.contains(diagnostic) else { return }
        diagnostics.append(diagnostic)
    }

    func diagnostic(forYAMLError error: any Error, yaml: String) -> TopologyDiagnostic {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        guard let error = error as? YamlError else {
            return TopologyDiagnostic(
                location: SourceLocation(file: file, line: 1, column: 1), code: .yamlSyntax, message: "\(error)")
        }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
            let .composer(context, problem, mark, _):
            var message = problem
            var position = mark
            if let context {
                message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
                // Running off the end of the file says little; where the unfinished thing began says more.
                if problem.contains("end of stream") { position = context.mark }
            }
            if problem.contains("cannot start any token"), Self.character(at: position, in: yaml) == "\t" {
                message = "a tab character; YAML indents with spaces only"
            }
            return TopologyDiagnostic(location: at(position), code: .yamlSyntax, message: message)
        case let .reader(problem, offset, _, _):
            let detail = offset.map { " at byte \($0)" } ?? ""
            return TopologyDiagnostic(
                location: SourceLocation(file: file, line: 1, column: 1), code: .yamlSyntax,
                message: "\(problem)\(detail)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let key = duplicates.first ?? "?"
            let first = context.mark
            let second = Self.repeatedKeyMark(key: key, after: first, in: yaml) ?? (first.line, first.column)
            return TopologyDiagnostic(
                location: SourceLocation(file: file, line: second.line, column: second.column), code: .duplicateKey,
                message: "key '\(key)' appears twice in one mapping (first at line \(first.line)); keep one")
        default:
            return TopologyDiagnostic(
                location: SourceLocation(file: file, line: 1, column: 1), code: .yamlSyntax, message: "\(error)")
        }
    }

    /// The YAML parser names the first of two equal keys; editors want the second, which is the
    /// first later line that starts with the same key at the same column.
    static func repeatedKeyMark(key: String, after first: Mark, in yaml: String) -> (line: Int, column: Int)? {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        let indent = first.column - 1
        guard first.line >= 1, first.line < lines.count else { return nil }
        for index in first.line..<lines.count {
            let scalars = Array(lines[index].unicodeScalars)
            let leading = scalars.prefix { $0 == " " }.count
            guard leading < scalars.count, scalars[leading] != "#" else { continue }
            // A line that starts left of the key's column ends the mapping.
            if leading < indent { return nil }
            guard leading == indent else { continue }
            let rest = String(String.UnicodeScalarView(scalars[leading...]))
            for spelling in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(spelling + ":") {
                return (index + 1, first.column)
            }
        }
        return nil
    }

    static func character(at mark: Mark, in yaml: String) -> Unicode.Scalar? {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        let scalars = Array(lines[mark.line - 1].unicodeScalars)
        return mark.column >= 1 && mark.column <= scalars.count ? scalars[mark.column - 1] : nil
    }

    // MARK: Generic readers

    private static let nullSpellings: Set<String> = ["", "~", "null", "Null", "NULL"]

    func isNull(_ node: Node) -> Bool {
        guard case let .scalar(scalar) = node else { return false }
        return scalar.style == .plain && Self.nullSpellings.contains(scalar.string)
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case let .scalar(scalar):
            if isNull(node) { return "nothing" }
            return "'\(scalar.string)'"
        }
    }

    /// Labels of the stages by index, by name once it is known, for messages.
    private var stageLabels: [Int: String] = [:]

    /// A key path as a person reads it: `stages[2].requires.gpu` becomes `requires.gpu in stage 'resize'`.
    func display(_ path: String) -> String {
        guard path.hasPrefix("stages["), let close = path.firstIndex(of: "]"),
            let index = Int(path[path.index(path.startIndex, offsetBy: 7)..<close])
        else { return path }
        let label = stageLabels[index] ?? "stage \(index + 1)"
        let rest = path[path.index(after: close)...].drop { $0 == "." }
        return rest.isEmpty ? label : "\(rest) in \(label)"
    }

    func wrongType(_ node: Node, expected: String, path: String) {
        report(.wrongType, at: node, "\(display(path)) must be \(expected), found \(describe(node))")
    }

    /// The keys of a mapping, checked: unknown keys are reported (with a suggestion), missing required ones too.
    ///
    /// YAML merge keys are honoured (`<<: *defaults` takes the keys of an anchored mapping that
    /// are not written here), and with `extensions`, keys starting with `x-` are ignored, so a
    /// file can hold anchored blocks to merge elsewhere.
    func fields(
        _ node: Node, path: String, allowed: [String], required: [String] = [], what: String, extensions: Bool = false
    ) -> Fields? {
        guard case let .mapping(mapping) = node else {
            wrongType(node, expected: "a mapping", path: path.isEmpty ? what : path)
            return nil
        }
        record(node, path)
        var result = Fields(node: node, path: path)
        var merged: [Node.Mapping] = []

        func take(_ keyNode: Node, _ valueNode: Node) {
            guard case let .scalar(keyScalar) = keyNode else {
                report(.wrongType, at: keyNode, "keys in \(what) must be words, found \(describe(keyNode))")
                return
            }
            let key = keyScalar.string
            if extensions, key.hasPrefix("x-") { return }
            guard allowed.contains(key) else {
                let hint = Suggestion.closest(to: key, among: allowed).map { "; did you mean '\($0)'?" }
                    ?? "; allowed keys: \(allowed.joined(separator: ", "))"
                report(.unknownKey, at: keyNode, "unknown key '\(key)' in \(what)\(hint)")
                return
            }
            guard result[key] == nil else { return }
            result.add(key, key: keyNode, value: valueNode)
        }

        for (keyNode, valueNode) in mapping {
            if case let .scalar(keyScalar) = keyNode, keyScalar.string == "<<", keyScalar.style == .plain {
                switch valueNode {
                case let .mapping(source):
                    merged.append(source)
                case let .sequence(sources):
                    for source in sources {
                        if case let .mapping(mapping) = source {
                            merged.append(mapping)
                        } else {
                            wrongType(source, expected: "an alias of a mapping, such as *defaults", path: "<<")
                        }
                    }
                default:
                    wrongType(valueNode, expected: "an alias of a mapping, such as *defaults", path: "<<")
                }
                continue
            }
            take(keyNode, valueNode)
        }
        // Keys written in the mapping itself win over merged ones, whatever their order.
        for source in merged {
            for (keyNode, valueNode) in source {
                take(keyNode, valueNode)
            }
        }
        for key in required where result[key] == nil {
            report(.missingKey, at: node, "\(what) is missing required key '\(key)'")
        }
        return result
    }

    func record(_ node: Node, _ path: String) {
        guard !path.isEmpty else { return }
        sourceMap[path] = location(node)
    }

    /// A scalar's text after `${VAR}` substitution; nil (reported) when it is not a scalar or a variable fails.
    func string(_ node: Node, path: String, allowEmpty: Bool = false) -> String? {
        guard case let .scalar(scalar) = node, !isNull(node) else {
            wrongType(node, expected: "a string", path: path)
            return nil
        }
        record(node, path)
        switch Substitution.apply(to: scalar.string, environment: environment) {
        case let .success(text):
            if !allowEmpty, text.isEmpty {
                report(.wrongType, at: node, "\(display(path)) must not be empty")
                return nil
            }
            return text
        case let .failure(problem):
            var at = location(node)
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
            at.column += problem.offset + (quoted ? 1 : 0)
            report(problem.code, at: at, problem.message)
            return nil
        }
    }

    func integer(_ node: Node, path: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard case .scalar = node, !isNull(node) else {
            wrongType(node, expected: "a whole number", path: path)
            return nil
        }
        guard let text = string(node, path: path) else { return nil }
        let digits = text.replacingOccurrences(of: "_", with: "")
        guard let value = Int(digits) else {
            wrongType(node, expected: "a whole number", path: path)
            return nil
        }
        if let range, !range.contains(value) {
            let bounds = range.upperBound == Int.max ? "at least \(range.lowerBound)" : "between \(range.lowerBound) and \(range.upperBound)"
            report(.outOfRange, at: node, "\(display(path)) must be \(bounds), found \(value)")
            return nil
        }
        return value
    }

    func boolean(_ node: Node, path: String) -> Bool? {
        guard case .scalar = node, !isNull(node) else {
            wrongType(node, expected: "true or false", path: path)
            return nil
        }
        guard let text = string(node, path: path) else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default:
            wrongType(node, expected: "true or false", path: path)
            return nil
        }
    }

    func size(_ node: Node, path: String) -> Int? {
        guard case .scalar = node, !isNull(node) else {
            wrongType(node, expected: "a size such as 4GiB or 512KB", path: path)
            return nil
        }
        guard let text = string(node, path: path) else { return nil }
        guard let bytes = ByteSize.parse(text) else {
            report(
                .invalidSize, at: node,
                "'\(text)' is not a size; write a number of bytes or a number with B, KB, KiB, MB, MiB, GB or GiB (e.g. 4GiB)")
            return nil
        }
        return bytes
    }

    func duration(_ node: Node, path: String, allowZero: Bool = false) -> Duration? {
        guard case .scalar = node, !isNull(node) else {
            wrongType(node, expected: "a duration such as 250ms or 2s", path: path)
            return nil
        }
        guard let text = string(node, path: path) else { return nil }
        guard let value = DurationLiteral.parse(text) else {
            let hint = Int(text) != nil ? "; add a unit, e.g. \(text)ms or \(text)s" : "; write e.g. 250ms, 2s, 1.5s, 1m or 1h"
            report(.invalidDuration, at: node, "'\(text)' is not a duration\(hint)")
            return nil
        }
        if !allowZero, value <= .zero {
            report(.outOfRange, at: node, "\(display(path)) must be longer than zero")
            return nil
        }
        return value
    }

    func endpoint(_ node: Node, path: String, use: Endpoint.Use) -> String? {
        guard let text = string(node, path: path) else { return nil }
        if let problem = Endpoint.problem(with: text, use: use) {
            report(.invalidEndpoint, at: node, problem)
            return nil
        }
        return text
    }

    func choice(_ node: Node, path: String, among choices: [String]) -> String? {
        guard let text = string(node, path: path) else { return nil }
        guard choices.contains(text) else {
            let hint = Suggestion.closest(to: text, among: choices).map { "; did you mean '\($0)'?" } ?? ""
            report(
                .invalidChoice, at: node,
                "'\(text)' is not a valid \(path.lastComponent); choose one of \(choices.joined(separator: ", "))\(hint)")
            return nil
        }
        return text
    }

    /// A list of strings, each with its node; a single string counts as a list of one when `allowSingle`.
    func stringList(_ node: Node, path: String, allowSingle: Bool) -> [(text: String, node: Node)]? {
        let items: [Node]
        switch node {
        case let .sequence(sequence):
            items = Array(sequence)
            record(node, path)
        case .scalar where allowSingle && !isNull(node):
            items = [node]
        default:
            wrongType(node, expected: allowSingle ? "a name or a list of names" : "a list of strings", path: path)
            return nil
        }
        var result: [(text: String, node: Node)] = []
        var failed = false
        for (index, item) in items.enumerated() {
            guard let text = string(item, path: "\(path)[\(index)]", allowEmpty: true) else {
                failed = true
                continue
            }
            result.append((text, item))
        }
        return failed ? nil : result
    }

    func stringMap(_ node: Node, path: String, what: String) -> [String: String]? {
        guard case let .mapping(mapping) = node else {
            wrongType(node, expected: "a mapping of names to values", path: path)
            return nil
        }
        record(node, path)
        var result: [String: String] = [:]
        var failed = false
        for (keyNode, valueNode) in mapping {
            guard case let .scalar(keyScalar) = keyNode else {
                report(.wrongType, at: keyNode, "keys in \(what) must be words, found \(describe(keyNode))")
                failed = true
                continue
            }
            guard let value = string(valueNode, path: "\(path).\(keyScalar.string)", allowEmpty: true) else {
                failed = true
                continue
            }
            result[keyScalar.string] = value
        }
        return failed ? nil : result
    }

    // MARK: Topology

    func readTopology(_ root: Node) -> Topology? {
        guard
            let top = fields(
                root, path: "", allowed: Schema.root, required: ["version", "name", "source", "stages", "sink"],
                what: "the topology",
                extensions: true)
        else { return nil }

        if let versionNode = top["version"] {
            guard let version = integer(versionNode, path: "version") else { return nil }
            guard TopologyLoader.supportedVersions.contains(version) else {
                report(
                    .unsupportedVersion, at: versionNode,
                    "version \(version) is not supported; this LANCompute reads version \(TopologyLoader.supportedVersions.map(String.init).joined(separator: ", "))")
                return nil
            }
        }
        let name = top["name"].flatMap { string($0, path: "name") }
        let description = top["description"].flatMap { string($0, path: "description", allowEmpty: true) }

        let source = top["source"].flatMap(readSource)
        let sink = top["sink"].flatMap(readSink)
        let broker = top["broker"].map(readBroker) ?? BrokerSettings()
        let stages = top["stages"].flatMap(readStages)

        if let source {
            checkEndpointReuse(source: source, broker: broker)
        }

        guard let name, let source, let sink, let stages, diagnostics.isEmpty else { return nil }
        var topology = Topology(
            version: 1, name: name, description: description, source: source, stages: stages, sink: sink, broker: broker)
        topology.sourceMap = sourceMap
        return topology
    }

    // MARK: Source

    func readSource(_ node: Node) -> SourceSpec? {
        guard let fields = fields(node, path: "source", allowed: Schema.source, what: "source") else { return nil }
        let kinds = fields.order.filter { Schema.sourceKinds.contains($0) }
        guard let kindKey = kinds.first else {
            report(.sourceKind, at: node, "source needs one of: file, stdin, pull, generate")
            return nil
        }
        if kinds.count > 1, let second = fields.keyNode(kinds[1]) {
            report(.sourceKind, at: second, "source has both '\(kinds[0])' and '\(kinds[1])'; a source is exactly one of file, stdin, pull, generate")
            return nil
        }
        let value = fields[kindKey]!
        var kind: SourceSpec.Kind?
        switch kindKey {
        case "file":
            kind = string(value, path: "source.file").map { .file(path: $0) }
        case "stdin":
            if let flag = boolean(value, path: "source.stdin") {
                if flag {
                    kind = .stdin
                } else {
                    report(.sourceKind, at: value, "source.stdin: false names no source; write 'stdin: true' or another source")
                }
            }
        case "pull":
            kind = endpoint(value, path: "source.pull", use: .bind).map { .pull(endpoint: $0) }
        default:
            if let generate = self.fields(value, path: "source.generate", allowed: Schema.generate, required: Schema.generate, what: "source.generate") {
                let count = generate["count"].flatMap { integer($0, path: "source.generate.count", range: 0...Int.max) }
                let bytes = generate["size"].flatMap { size($0, path: "source.generate.size") }
                if let count, let bytes { kind = .generate(count: count, size: bytes) }
            }
        }
        var format = SourceSpec.Format.lines
        if let formatNode = fields["format"] {
            guard let text = choice(formatNode, path: "source.format", among: ["lines", "binary"]) else { return nil }
            format = SourceSpec.Format(rawValue: text)!
        }
        return kind.map { SourceSpec(kind: $0, format: format) }
    }

    // MARK: Sink

    func readSink(_ node: Node) -> SinkSpec? {
        guard let fields = fields(node, path: "sink", allowed: Schema.sink, what: "sink") else { return nil }
        let kinds = fields.order.filter { Schema.sinkKinds.contains($0) }
        var kind: SinkSpec.Kind?
        if kinds.isEmpty {
            report(.sinkKind, at: node, "sink needs one of: file, stdout, push")
        } else if kinds.count > 1, let second = fields.keyNode(kinds[1]) {
            report(.sinkKind, at: second, "sink has both '\(kinds[0])' and '\(kinds[1])'; a sink is exactly one of file, stdout, push")
        } else {
            let value = fields[kinds[0]]!
            switch kinds[0] {
            case "file":
                kind = string(value, path: "sink.file").map { .file(path: $0) }
            case "stdout":
                if let flag = boolean(value, path: "sink.stdout") {
                    if flag {
                        kind = .stdout
                    } else {
                        report(.sinkKind, at: value, "sink.stdout: false names no sink; write 'stdout: true' or another sink")
                    }
                }
            default:
                kind = endpoint(value, path: "sink.push", use: .connect).map { .push(endpoint: $0) }
            }
        }

        var aggregate = SinkSpec.Aggregate.none
        if let node = fields["aggregate"] {
            let choices = ["none", "count-by-key", "sum-by-key", "collect"]
            guard let text = choice(node, path: "sink.aggregate", among: choices) else { return nil }
            aggregate = SinkSpec.Aggregate(rawValue: text)!
        }
        // Aggregates write JSON objects, so their natural format is jsonl even when none is written.
        var format: SinkSpec.Format = aggregate == .none ? .lines : .jsonl
        if let node = fields["format"] {
            guard let text = choice(node, path: "sink.format", among: ["jsonl", "lines"]) else { return nil }
            format = SinkSpec.Format(rawValue: text)!
            if format == .lines, aggregate != .none {
                report(.invalidChoice, at: node, "aggregate: \(aggregate.rawValue) writes JSON objects; use format: jsonl")
                return nil
            }
        }
        let keyed = aggregate == .countByKey || aggregate == .sumByKey
        var key: KeyExtractor?
        if let node = fields["key"] {
            if !keyed {
                report(
                    .keyWithoutAggregate, at: fields.keyNode("key")!,
                    "sink.key is only used by aggregate: count-by-key or sum-by-key, but aggregate is \(aggregate.rawValue)")
                return nil
            }
            guard let extractor = keyExtractor(node, path: "sink.key") else { return nil }
            key = extractor
        } else if keyed, let node = fields["aggregate"] {
            report(
                .aggregateNeedsKey, at: node,
                "aggregate: \(aggregate.rawValue) needs a key; add e.g. 'key: item' or 'key: {json: field}' to the sink")
            return nil
        }
        var keyName = "key"
        if let node = fields["key-name"] {
            if !keyed {
                report(
                    .keyWithoutAggregate, at: fields.keyNode("key-name")!,
                    "sink.key-name is only used by aggregate: count-by-key or sum-by-key, but aggregate is \(aggregate.rawValue)")
                return nil
            }
            guard let text = string(node, path: "sink.key-name") else { return nil }
            keyName = text
        }
        return kind.map { SinkSpec(kind: $0, format: format, aggregate: aggregate, key: key, keyName: keyName) }
    }

    // MARK: Broker

    func readBroker(_ node: Node) -> BrokerSettings {
        var settings = BrokerSettings()
        guard let fields = fields(node, path: "broker", allowed: Schema.broker, what: "broker") else { return settings }
        if let node = fields["bind"], let value = endpoint(node, path: "broker.bind", use: .bind) { settings.bind = value }
        if let node = fields["events"], let value = endpoint(node, path: "broker.events", use: .bind) { settings.events = value }
        if let node = fields["aggregator"], let value = endpoint(node, path: "broker.aggregator", use: .bind) {
            settings.aggregator = value
        }
        if let node = fields["heartbeat-interval"], let value = duration(node, path: "broker.heartbeat-interval") {
            settings.heartbeatInterval = value
        }
        if let node = fields["heartbeat-liveness"], let value = integer(node, path: "broker.heartbeat-liveness", range: 1...Int.max) {
            settings.heartbeatLiveness = value
        }
        if let node = fields["queue-limit"], let value = integer(node, path: "broker.queue-limit", range: 1...Int.max) {
            settings.queueLimit = value
        }
        return settings
    }

    /// Two sockets cannot bind one endpoint; say so before the broker fails to start.
    func checkEndpointReuse(source: SourceSpec, broker: BrokerSettings) {
        var seen: [String: String] = [:]
        var uses: [(path: String, endpoint: String)] = [
            ("broker.bind", broker.bind), ("broker.events", broker.events), ("broker.aggregator", broker.aggregator),
        ]
        if case let .pull(endpoint) = source.kind { uses.append(("source.pull", endpoint)) }
        // Report at the use written last in the file, so the message points at something the user wrote.
        uses.sort { (sourceMap[$0.path]?.line ?? 0, sourceMap[$0.path]?.column ?? 0) < (sourceMap[$1.path]?.line ?? 0, sourceMap[$1.path]?.column ?? 0) }
        for use in uses {
            if let earlier = seen[use.endpoint], let at = sourceMap[use.path] {
                report(.endpointReused, at: at, "\(use.path) uses \(use.endpoint), which \(earlier) already uses; give each socket its own endpoint")
            }
            seen[use.endpoint] = seen[use.endpoint] ?? use.path
        }
    }

    // MARK: Keys

    func keyExtractor(_ node: Node, path: String) -> KeyExtractor? {
        let forms = "'item', {json: FIELD}, {regex: PATTERN, group: N} or {field: N}"
        if case .scalar = node, !isNull(node) {
            guard let text = string(node, path: path) else { return nil }
            if text == "item" { return .item }
            report(.invalidKey, at: node, "'\(text)' is not a key; write \(forms)")
            return nil
        }
        guard case .mapping = node else {
            report(.invalidKey, at: node, "\(display(path)) must be \(forms), found \(describe(node))")
            return nil
        }
        guard let fields = fields(node, path: path, allowed: Schema.key, what: display(path)) else { return nil }
        let forms2 = fields.order.filter { ["json", "regex", "field"].contains($0) }
        guard let form = forms2.first else {
            report(.invalidKey, at: node, "\(display(path)) needs one of json, regex or field")
            return nil
        }
        if forms2.count > 1, let second = fields.keyNode(forms2[1]) {
            report(.invalidKey, at: second, "\(display(path)) has both '\(forms2[0])' and '\(forms2[1])'; a key is taken one way")
            return nil
        }
        if form != "regex", let groupKey = fields.keyNode("group") {
            report(.invalidKey, at: groupKey, "\(display(path + ".group")) only goes with regex")
            return nil
        }
        let value = fields[form]!
        switch form {
        case "json":
            return string(value, path: "\(path).json").map { .jsonField($0) }
        case "field":
            return integer(value, path: "\(path).field", range: 0...Int.max).map { .field($0) }
        default:
            guard let pattern = string(value, path: "\(path).regex") else { return nil }
            // Compiled as the extractors compile it at run time (Swift Regex), so validate accepts what runs.
            let compiled: KeyPattern
            do {
                compiled = try KeyPattern(pattern)
            } catch {
                report(.invalidRegex, at: value, error.description)
                return nil
            }
            var group = compiled.captureGroups > 0 ? 1 : 0
            if let groupNode = fields["group"] {
                guard let chosen = integer(groupNode, path: "\(path).group", range: 0...Int.max) else { return nil }
                do {
                    try compiled.check(group: chosen)
                } catch {
                    report(.invalidRegex, at: groupNode, error.description)
                    return nil
                }
                group = chosen
            }
            return .regex(pattern: pattern, group: group)
        }
    }

    // MARK: Stages

    /// A stage as written, before `from` links are resolved against the other stages.
    struct DraftStage {
        var index: Int
        /// The name, when it is a valid one.
        var name: String?
        /// The name as written, valid or not, so `from` links to it are not reported twice.
        var writtenName: String?
        var nameNode: Node?
        var node: Node
        var from: [(text: String, node: Node)]?
        var spec: StageSpec?
    }

    func readStages(_ node: Node) -> [StageSpec]? {
        guard case let .sequence(sequence) = node else {
            wrongType(node, expected: "a list of stages", path: "stages")
            return nil
        }
        record(node, "stages")
        let nodes = Array(sequence)
        guard !nodes.isEmpty else {
            report(.noStages, at: node, "stages is empty; a pipeline needs at least one stage")
            return nil
        }
        let drafts = nodes.enumerated().map { readStage($1, index: $0) }
        return resolve(drafts)
    }

    func readStage(_ node: Node, index: Int) -> DraftStage {
        let path = "stages[\(index)]"
        var draft = DraftStage(index: index, node: node)
        // Messages about this stage's keys name it, so find its name before checking them.
        if case let .mapping(mapping) = node,
            let written = mapping.first(where: { $0.key.string == "name" })?.value.string,
            !written.isEmpty, !written.contains("${")
        {
            stageLabels[index] = "stage '\(written)'"
        }
        guard
            let fields = fields(
                node, path: path, allowed: Schema.stage, required: ["name"], what: stageLabels[index] ?? "stage \(index + 1)")
        else {
            return draft
        }
        if let nameNode = fields["name"], let name = string(nameNode, path: "\(path).name") {
            draft.nameNode = nameNode
            draft.writtenName = name
            if let problem = Self.stageNameProblem(name) {
                report(.invalidStageName, at: nameNode, problem)
            } else {
                draft.name = name
            }
        }
        let what = draft.name.map { "stage '\($0)'" } ?? "stage \(index + 1)"
        let handler = readHandler(fields, path: path, what: what)
        if let fromNode = fields["from"] {
            draft.from = stringList(fromNode, path: "\(path).from", allowSingle: true)
        }
        var stage = StageSpec(name: draft.name ?? "", handler: handler ?? .external, location: location(node))
        if let node = fields["replicas"], let value = integer(node, path: "\(path).replicas", range: 1...Int.max) {
            stage.replicas = value
        }
        if let node = fields["credit"], let value = integer(node, path: "\(path).credit", range: 1...Int.max) {
            stage.credit = value
        }
        if let node = fields["requires"], let value = requirements(node, path: "\(path).requires") { stage.requires = value }
        if let node = fields["prefers"], let value = requirements(node, path: "\(path).prefers") { stage.prefers = value }
        if let node = fields["group-by"] { stage.groupBy = keyExtractor(node, path: "\(path).group-by") }
        if let node = fields["priority"], let value = integer(node, path: "\(path).priority") { stage.priority = value }
        if let node = fields["timeout"] { stage.timeout = duration(node, path: "\(path).timeout") }
        if let node = fields["max-attempts"], let value = integer(node, path: "\(path).max-attempts", range: 1...Int.max) {
            stage.maxAttempts = value
        }
        if let node = fields["deadline"] { stage.deadline = duration(node, path: "\(path).deadline") }
        if let node = fields["chain"], let value = boolean(node, path: "\(path).chain") { stage.chain = value }
        if let node = fields["spread"], let value = boolean(node, path: "\(path).spread") {
            stage.spread = value
            if value, fields["group-by"] != nil {
                report(.spreadWithGroupBy, at: fields.keyNode("spread") ?? node,
                       "\(what) has both spread and group-by: group-by sends each key to one worker, so its items cannot also be spread over hosts; remove one")
            }
        }
        if let node = fields["breaker"], let value = breaker(node, path: "\(path).breaker") { stage.breaker = value }
        draft.spec = stage
        return draft
    }

    /// `breaker: false`, `breaker: true`, or `breaker: {failures: N, window: N, cooldown: D}` (each key optional).
    func breaker(_ node: Node, path: String) -> BreakerPolicy? {
        if case .scalar = node {
            guard let enabled = boolean(node, path: path) else { return nil }
            return enabled ? .standard : .off
        }
        guard let fields = fields(node, path: path, allowed: Schema.breaker, what: display(path)) else { return nil }
        var policy = BreakerPolicy.standard
        if let value = fields["failures"], let failures = integer(value, path: "\(path).failures", range: 1...10_000) { policy.failures = failures }
        if let value = fields["window"], let window = integer(value, path: "\(path).window", range: 1...10_000) { policy.window = window }
        if let value = fields["cooldown"], let cooldown = duration(value, path: "\(path).cooldown") { policy.cooldown = cooldown }
        if policy.failures > policy.window {
            report(.breakerNeverOpens, at: fields["failures"] ?? fields["window"] ?? node,
                   "\(display(path)) asks for \(policy.failures) failures among the last \(policy.window) attempts, so it could never open; make failures at most window")
            return nil
        }
        return policy
    }

    static func stageNameProblem(_ name: String) -> String? {
        if Schema.reservedStageNames.contains(name) {
            return "'\(name)' is reserved (from: source means the pipeline's source); choose another stage name"
        }
        if name.hasPrefix("mmi.") { return "'\(name)' starts with 'mmi.', which MDP reserves for broker queries" }
        if name.utf8.count > 255 { return "stage names are at most 255 bytes" }
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || scalar.properties.numericType != nil || "-_.".unicodeScalars.contains(scalar)
        }
        if !allowed { return "'\(name)' is not a valid stage name; use letters, digits, '-', '_' and '.'" }
        return nil
    }

    func readHandler(_ fields: Fields, path: String, what: String) -> HandlerSpec? {
        let handlers = fields.order.filter { $0 == "builtin" || $0 == "exec" }
        if handlers.count > 1, let second = fields.keyNode(handlers[1]) {
            report(.twoHandlers, at: second, "\(what) has both 'builtin' and 'exec'; a stage has one handler (or none, for external workers)")
            return nil
        }
        if handlers.first != "builtin", let optionsKey = fields.keyNode("options") {
            report(.optionsWithoutBuiltin, at: optionsKey, "options only apply to builtin stages; \(what) has no 'builtin'")
        }
        switch handlers.first {
        case "builtin":
            return readBuiltin(fields, path: path, what: what)
        case "exec":
            return readExec(fields["exec"]!, path: "\(path).exec", what: what).map { .exec($0) }
        default:
            return .external
        }
    }

    /// Checks a builtin stage through the operator registry: the option kinds and parsers the workers use.
    func readBuiltin(_ fields: Fields, path: String, what: String) -> HandlerSpec? {
        let nameNode = fields["builtin"]!
        guard let name = string(nameNode, path: "\(path).builtin") else { return nil }
        guard let spec = OperatorRegistry.spec(named: name) else {
            let hint = Suggestion.closest(to: name, among: OperatorRegistry.names).map { "; did you mean '\($0)'?" }
                ?? "; the builtins are \(OperatorRegistry.names.joined(separator: ", "))"
            report(.unknownBuiltin, at: nameNode, "unknown builtin '\(name)'\(hint)")
            return nil
        }
        var options: [String: String] = [:]
        var failed = false
        if let optionsNode = fields["options"] {
            guard case let .mapping(mapping) = optionsNode else {
                wrongType(optionsNode, expected: "a mapping of option names to values", path: "\(path).options")
                return nil
            }
            record(optionsNode, "\(path).options")
            let known = spec.options.map(\.name).sorted()
            for (keyNode, valueNode) in mapping {
                guard case let .scalar(keyScalar) = keyNode else {
                    report(.wrongType, at: keyNode, "option names must be words, found \(describe(keyNode))")
                    failed = true
                    continue
                }
                let optionName = keyScalar.string
                guard let option = spec.option(named: optionName) else {
                    let hint = Suggestion.closest(to: optionName, among: known).map { "; did you mean '\($0)'?" }
                        ?? (known.isEmpty ? "; it takes no options" : "; it takes \(known.joined(separator: ", "))")
                    report(.unknownOption, at: keyNode, "builtin '\(name)' has no option '\(optionName)'\(hint)")
                    failed = true
                    continue
                }
                guard let value = string(valueNode, path: "\(path).options.\(optionName)", allowEmpty: true) else {
                    failed = true
                    continue
                }
                if case .failure(let problem) = option.kind.parse(value) {
                    report(.invalidOption, at: valueNode, "builtin '\(name)' option '\(optionName)': \(problem.reason)")
                    failed = true
                    continue
                }
                options[optionName] = value
            }
        }
        for option in spec.options.sorted(by: { $0.name < $1.name }) where option.isRequired && !failed {
            if options[option.name] == nil {
                report(.missingOption, at: nameNode, "builtin '\(name)' needs option '\(option.name)'; add 'options: {\(option.name): ...}'")
                failed = true
            }
        }
        guard !failed else { return nil }
        // Each option passed on its own; the whole set must pass too, or validate and run would differ.
        do {
            _ = try spec.validate(options)
        } catch {
            report(.invalidOption, at: nameNode, "builtin '\(name)' \(error)")
            return nil
        }
        return .builtin(name: name, options: options)
    }

    func readExec(_ node: Node, path: String, what: String) -> ExecSpec? {
        guard let fields = fields(node, path: path, allowed: Schema.exec, required: ["command"], what: display(path))
        else { return nil }
        var failed = false
        var mode = ExecSpec.Mode.stream
        if let node = fields["mode"] {
            if let text = choice(node, path: "\(path).mode", among: ["stream", "per-item"]) {
                mode = ExecSpec.Mode(rawValue: text)!
            } else {
                failed = true
            }
        }
        var output = ExecSpec.Output.line
        if let node = fields["output"] {
            if let text = choice(node, path: "\(path).output", among: ["line", "json-array"]) {
                output = ExecSpec.Output(rawValue: text)!
            } else {
                failed = true
            }
        }
        var command: [String]?
        if let commandNode = fields["command"] {
            if case .scalar = commandNode, !isNull(commandNode) {
                report(
                    .wrongType, at: commandNode,
                    "\(display(path + ".command")) must be a list of arguments such as [python3, script.py]; it never goes through a shell")
            } else if let arguments = stringList(commandNode, path: "\(path).command", allowSingle: false) {
                if arguments.isEmpty {
                    report(.emptyCommand, at: commandNode, "\(display(path + ".command")) is empty; name the program to run, e.g. [python3, script.py]")
                } else if arguments[0].text.isEmpty {
                    report(.emptyCommand, at: arguments[0].node, "\(display(path + ".command")) starts with an empty program name")
                } else if mode == .stream, let placeholder = arguments.first(where: { $0.text.contains("{}") }) {
                    report(
                        .placeholderInStream, at: placeholder.node,
                        "'{}' stands for a per-item file, which only mode: per-item has; stream mode sends items on stdin")
                } else {
                    command = arguments.map(\.text)
                }
            }
        }
        var spec = ExecSpec(command: command ?? [], mode: mode, output: output)
        if let node = fields["working-directory"] {
            spec.workingDirectory = string(node, path: "\(path).working-directory")
        }
        if let node = fields["environment"] {
            spec.environment = stringMap(node, path: "\(path).environment", what: "\(path).environment") ?? [:]
        }
        return command == nil || failed ? nil : spec
    }

    func requirements(_ node: Node, path: String) -> Requirements? {
        guard let fields = fields(node, path: path, allowed: Schema.requirements, what: display(path)) else { return nil }
        var result = Requirements()
        if let node = fields["arch"], let text = string(node, path: "\(path).arch") {
            if let normalised = Schema.architectures[text] {
                result.arch = normalised
            } else {
                let hint = Suggestion.hint(for: text, among: Array(Schema.architectures.keys).sorted())
                report(.invalidChoice, at: node, "'\(text)' is not a known architecture; choose x86_64 or arm64\(hint)")
            }
        }
        if let node = fields["os"], let text = choice(node, path: "\(path).os", among: Schema.operatingSystems) {
            result.os = text
        }
        if let node = fields["gpu"] { result.gpu = boolean(node, path: "\(path).gpu") }
        if let node = fields["min-gpus"] { result.minGPUs = integer(node, path: "\(path).min-gpus", range: 1...Int.max) }
        if let node = fields["gpu-model"] { result.gpuModel = string(node, path: "\(path).gpu-model") }
        if let node = fields["min-gpu-memory"] { result.minGPUMemory = size(node, path: "\(path).min-gpu-memory") }
        if result.gpu == false, let written = ["min-gpus", "gpu-model", "min-gpu-memory"].first(where: { fields[$0] != nil }),
           let node = fields.keyNode(written) {
            report(.contradictoryRequirements, at: node,
                   "\(display(path)) has gpu: false and \(written), which asks for a GPU; remove one of them")
        }
        if let node = fields["min-memory"] { result.minMemory = size(node, path: "\(path).min-memory") }
        if let node = fields["min-cores"] { result.minCores = integer(node, path: "\(path).min-cores", range: 1...Int.max) }
        if let node = fields["labels"] {
            result.labels = stringMap(node, path: "\(path).labels", what: "\(path).labels") ?? [:]
        }
        return result
    }

    // MARK: Links between stages

    /// Fills in default `from` links, then checks names, references and cycles.
    func resolve(_ drafts: [DraftStage]) -> [StageSpec]? {
        var firstByName: [String: DraftStage] = [:]
        for draft in drafts {
            guard let name = draft.name, let nameNode = draft.nameNode else { continue }
            if let earlier = firstByName[name], let earlierNode = earlier.nameNode {
                report(
                    .duplicateStage, at: nameNode,
                    "stage '\(name)' is already defined at line \(location(earlierNode).line); stage names are unique")
            } else {
                firstByName[name] = draft
            }
        }
        let names = drafts.compactMap(\.writtenName)
        var upstream: [Int: [(name: String, node: Node)]] = [:]
        var stages: [StageSpec] = []
        for draft in drafts {
            var links: [(name: String, node: Node)] = []
            if let written = draft.from {
                let mentionsSource = written.contains { $0.text == "source" }
                if mentionsSource, written.count > 1 {
                    let other = written.first { $0.text != "source" }!
                    report(
                        .mixedFrom, at: other.node,
                        "a stage reads either the source or other stages; remove 'source' or '\(other.text)' from this from: list")
                }
                var seen: Set<String> = []
                for entry in written where entry.text != "source" {
                    if !seen.insert(entry.text).inserted {
                        report(.duplicateFrom, at: entry.node, "'\(entry.text)' is listed twice in from:")
                        continue
                    }
                    guard names.contains(entry.text) else {
                        let hint = Suggestion.closest(to: entry.text, among: names).map { "; did you mean '\($0)'?" } ?? ""
                        report(.unknownStage, at: entry.node, "from: names stage '\(entry.text)', which does not exist\(hint)")
                        continue
                    }
                    links.append((entry.text, entry.node))
                }
            } else if draft.index > 0, let previous = drafts[draft.index - 1].writtenName {
                links = [(previous, draft.node)]
            }
            upstream[draft.index] = links
            if var spec = draft.spec {
                spec.from = links.map(\.name)
                stages.append(spec)
            }
        }
        findCycle(drafts: drafts, upstream: upstream)
        return stages.count == drafts.count ? stages : nil
    }

    /// Reports one cycle of `from` links, named in the order items would flow around it.
    func findCycle(drafts: [DraftStage], upstream: [Int: [(name: String, node: Node)]]) {
        var indexByName: [String: Int] = [:]
        for draft in drafts {
            if let name = draft.name, indexByName[name] == nil { indexByName[name] = draft.index }
        }
        enum VisitState { case visiting, done }
        var marks: [Int: VisitState] = [:]
        var stack: [Int] = []

        func visit(_ index: Int) -> Bool {
            marks[index] = .visiting
            stack.append(index)
            for link in upstream[index] ?? [] {
                guard let target = indexByName[link.name] else { continue }
                if marks[target] == .visiting {
                    let start = stack.firstIndex(of: target)!
                    // stack[k] reads from stack[k + 1] and the last reads from `target`: items flow backwards.
                    let loop = [target] + stack[(start + 1)...].reversed() + [target]
                    let path = loop.compactMap { drafts[$0].name }.joined(separator: " -> ")
                    report(.cycle, at: link.node, "the from: links form a cycle: \(path)")
                    return true
                }
                if marks[target] == nil, visit(target) { return true }
            }
            stack.removeLast()
            marks[index] = .done
            return false
        }

        for draft in drafts where marks[draft.index] == nil {
            if visit(draft.index) { return }
        }
    }
}

extension String {
    fileprivate var lastComponent: String {
        split(separator: ".").last.map(String.init) ?? self
    }
}
