// The operator registry: every builtin's typed spec, consulted alike by the topology loader and the workers.

import Foundation

/// How costly one item is for an operator; a worker schedules a stage by it.
public enum OperatorCost: Sendable, Equatable {
    /// Microseconds per item and never blocks: may run on the worker's I/O thread, in large batches.
    case fast
    /// May block (waits, I/O): runs on slot threads, a few items in flight per slot.
    case blocking
}

/// The type of an option's value. Options are written as strings; `parse` is the one
/// reading of them, used by validation and by the handler factory alike.
public enum OperatorOptionKind: Sendable, Equatable {
    /// Any text, the empty string included.
    case text
    /// Text that must not be empty.
    case nonEmptyText
    /// A regular expression, compiled by Swift `Regex`: the engine that matches items at run time.
    case regex
    /// A duration as the topology writes durations (`DurationLiteral`: `250ms`, `2s`, `1.5s`).
    case duration
    /// `true` or `false`, in any case (YAML writers capitalise them).
    case boolean
}

/// One option a builtin takes.
public struct OperatorOption: Sendable, Equatable {
    public var name: String
    public var kind: OperatorOptionKind
    public var isRequired: Bool

    public init(_ name: String, _ kind: OperatorOptionKind, required: Bool = false) {
        self.name = name
        self.kind = kind
        isRequired = required
    }
}

/// An option value after parsing. Not `Sendable`, because a compiled `Regex` is not.
public enum OperatorOptionValue {
    case text(String)
    case regex(Regex<AnyRegexOutput>)
    case duration(Duration)
    case boolean(Bool)
}

/// Why a builtin's options cannot be used; the topology loader maps each case to its LC1xxx code.
public enum OperatorOptionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The builtin takes no option of this name (LC1031).
    case unknownOption(String, accepted: [String])
    /// A required option is absent (LC1032).
    case missingOption(String)
    /// The value does not parse as the option's kind (LC1034); `reason` says why.
    case invalidValue(option: String, reason: String)

    public var description: String {
        switch self {
        case .unknownOption(let option, let accepted):
            return "has no option '\(option)' "
                + (accepted.isEmpty ? "(it takes none)" : "(accepted: \(accepted.joined(separator: ", ")))")
        case .missingOption(let option):
            return "needs option '\(option)'"
        case .invalidValue(let option, let reason):
            return "option '\(option)': \(reason)"
        }
    }
}

extension OperatorOptionKind {
    /// The value `text` stands for, or why it stands for none (a phrase quoting `text`).
    public func parse(_ text: String) -> Result<OperatorOptionValue, OperatorValueProblem> {
        switch self {
        case .text:
            return .success(.text(text))
        case .nonEmptyText:
            return text.isEmpty ? .failure(OperatorValueProblem("must not be empty")) : .success(.text(text))
        case .regex:
            do {
                return .success(.regex(try Regex(text)))
            } catch {
                return .failure(OperatorValueProblem("'\(text)' is not a valid regular expression: \(error)"))
            }
        case .duration:
            guard let duration = DurationLiteral.parse(text) else {
                return .failure(OperatorValueProblem("'\(text)' is not a duration; write e.g. 250ms, 2s or 1.5s"))
            }
            return .success(.duration(duration))
        case .boolean:
            switch text.lowercased() {
            case "true": return .success(.boolean(true))
            case "false": return .success(.boolean(false))
            default: return .failure(OperatorValueProblem("'\(text)' is not true or false"))
            }
        }
    }
}

/// What is wrong with one option value, as a phrase.
public struct OperatorValueProblem: Error, Sendable, Equatable {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }
}

/// A builtin's options, validated and typed. The accessors return nil for an option not given.
public struct OperatorOptions {
    private let values: [String: OperatorOptionValue]

    init(_ values: [String: OperatorOptionValue]) {
        self.values = values
    }

    public func text(_ name: String) -> String? {
        if case .text(let value) = values[name] { return value }
        return nil
    }

    public func regex(_ name: String) -> Regex<AnyRegexOutput>? {
        if case .regex(let value) = values[name] { return value }
        return nil
    }

    public func duration(_ name: String) -> Duration? {
        if case .duration(let value) = values[name] { return value }
        return nil
    }

    public func boolean(_ name: String) -> Bool? {
        if case .boolean(let value) = values[name] { return value }
        return nil
    }
}

/// One builtin's work on one item. Builtins hold no resources, so a closure is all a handler needs.
typealias BuiltinOperation = (StageItem) throws(StageFailure) -> [[UInt8]]

/// A builtin operator: its name, typed options, one-line summary, cost, and the factory of its work.
public struct OperatorSpec: Sendable {
    public let name: String
    /// One line, shown by the docs (`Docs/stages.md` quotes it, a test holds them equal).
    public let summary: String
    public let options: [OperatorOption]
    public let cost: OperatorCost
    /// Makes the operation from options that `validate` accepted.
    let makeOperation: @Sendable (OperatorOptions) -> BuiltinOperation

    init(
        name: String, summary: String, options: [OperatorOption] = [], cost: OperatorCost = .fast,
        makeOperation: @escaping @Sendable (OperatorOptions) -> BuiltinOperation
    ) {
        self.name = name
        self.summary = summary
        self.options = options
        self.cost = cost
        self.makeOperation = makeOperation
    }

    public func option(named name: String) -> OperatorOption? {
        options.first { $0.name == name }
    }

    /// Checks `options` against this spec and types them; the first problem found, in option-name order.
    public func validate(_ options: [String: String]) throws(OperatorOptionError) -> OperatorOptions {
        var values: [String: OperatorOptionValue] = [:]
        for (name, text) in options.sorted(by: { $0.key < $1.key }) {
            guard let option = option(named: name) else {
                throw .unknownOption(name, accepted: self.options.map(\.name).sorted())
            }
            switch option.kind.parse(text) {
            case .success(let value): values[name] = value
            case .failure(let problem): throw .invalidValue(option: name, reason: problem.reason)
            }
        }
        for option in self.options.sorted(by: { $0.name < $1.name }) where option.isRequired && values[option.name] == nil {
            throw .missingOption(option.name)
        }
        return OperatorOptions(values)
    }

    /// A handler for one slot of stage `stageName`; a failure names the stage and the builtin.
    func makeHandler(options: [String: String], stageName: String) throws(StageFailure) -> BuiltinHandler {
        do {
            return BuiltinHandler(operation: makeOperation(try validate(options)))
        } catch {
            throw StageFailure("stage '\(stageName)': builtin '\(name)' \(error)")
        }
    }
}

/// Every builtin operator a LANCompute worker runs, in the order the docs list them.
public enum OperatorRegistry {
    public static let all: [OperatorSpec] = [
        .identity, .upper, .lower, .splitWords, .sha256, .jsonGet, .grep, .sleep, .fail,
    ]

    public static var names: [String] { all.map(\.name) }

    public static func spec(named name: String) -> OperatorSpec? {
        all.first { $0.name == name }
    }

    /// The spec of builtin `name`, or a failure naming the stage and the known builtins.
    static func spec(named name: String, stageName: String) throws(StageFailure) -> OperatorSpec {
        guard let spec = spec(named: name) else {
            throw StageFailure("stage '\(stageName)': unknown builtin '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        return spec
    }
}

/// Runs a builtin operation.
final class BuiltinHandler: StageHandler {
    private let operation: BuiltinOperation

    init(operation: @escaping BuiltinOperation) {
        self.operation = operation
    }

    func process(_ item: StageItem) throws(StageFailure) -> [[UInt8]] {
        try operation(item)
    }

    func close() {}
}

@available(*, unavailable) extension BuiltinHandler: Sendable {}
