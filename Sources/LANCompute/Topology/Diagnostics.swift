// Located problems found in a topology file, and the stable codes that name them.

/// One problem in a topology file, at the position an editor should jump to.
public struct TopologyDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    /// A stable code such as `LC1004`; the catalogue is `Docs/errors.md`.
    public var code: String
    public var message: String

    public init(location: SourceLocation, code: String, message: String) {
        self.location = location
        self.code = code
        self.message = message
    }

    public init(location: SourceLocation, code: TopologyErrorCode, message: String) {
        self.init(location: location, code: code.rawValue, message: message)
    }

    /// `FILE:LINE:COLUMN: error LCnnnn: message`, the format editors and CI logs understand.
    public var description: String { "\(location): error \(code): \(message)" }
}

/// Every problem found in one topology file, in file order.
public struct TopologyErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [TopologyDiagnostic]

    public init(_ diagnostics: [TopologyDiagnostic]) {
        self.diagnostics = diagnostics.sorted { lhs, rhs in
            if lhs.location.file != rhs.location.file { return lhs.location.file < rhs.location.file }
            if lhs.location.line != rhs.location.line { return lhs.location.line < rhs.location.line }
            if lhs.location.column != rhs.location.column { return lhs.location.column < rhs.location.column }
            return lhs.code < rhs.code
        }
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// The topology error codes (LC1xxx). Codes are never reused or renumbered: tools match on them.
public enum TopologyErrorCode: String, Sendable, CaseIterable {
    /// The file could not be read.
    case unreadableFile = "LC1001"
    /// The file is not well-formed YAML.
    case yamlSyntax = "LC1002"
    /// A mapping has the same key twice.
    case duplicateKey = "LC1003"
    /// A key that the schema does not know.
    case unknownKey = "LC1004"
    /// A value of the wrong type (a list where a string belongs, a word where a number belongs).
    case wrongType = "LC1005"
    /// A required key is absent.
    case missingKey = "LC1006"
    /// `version` is not one this LANCompute reads.
    case unsupportedVersion = "LC1007"
    /// `${VAR}` names a variable that is not set and has no default.
    case unsetVariable = "LC1008"
    /// A `${` without its closing `}`, or an empty or malformed variable name.
    case malformedVariable = "LC1009"
    /// The file holds no document.
    case emptyDocument = "LC1010"
    /// `source` names no kind of source, or more than one.
    case sourceKind = "LC1011"
    /// `sink` names no kind of sink, or more than one.
    case sinkKind = "LC1012"
    /// A stage has more than one handler (`builtin` and `exec`).
    case twoHandlers = "LC1020"
    /// Two stages have the same name.
    case duplicateStage = "LC1021"
    /// `from` names a stage that does not exist.
    case unknownStage = "LC1022"
    /// The stages' `from` links form a cycle.
    case cycle = "LC1023"
    /// A stage name that cannot be a service name.
    case invalidStageName = "LC1024"
    /// `stages` is empty.
    case noStages = "LC1025"
    /// `from` lists the same stage twice.
    case duplicateFrom = "LC1026"
    /// `from` mixes `source` with stage names.
    case mixedFrom = "LC1027"
    /// `builtin` names no operator LANCompute ships.
    case unknownBuiltin = "LC1030"
    /// An option the builtin operator does not take.
    case unknownOption = "LC1031"
    /// An option the builtin operator requires is absent.
    case missingOption = "LC1032"
    /// `options` on a stage that is not a builtin.
    case optionsWithoutBuiltin = "LC1033"
    /// A builtin option whose value the operator cannot use.
    case invalidOption = "LC1034"
    /// `exec.command` is empty or has an empty program name.
    case emptyCommand = "LC1040"
    /// `{}` in the command of a `stream` exec stage, where there is no per-item file.
    case placeholderInStream = "LC1041"
    /// An endpoint that ZeroMQ would not accept, or that cannot be used where it is.
    case invalidEndpoint = "LC1050"
    /// A size that does not parse (`4GiB`, `512KB`, `1024`).
    case invalidSize = "LC1051"
    /// A duration that does not parse (`250ms`, `2s`, `1.5s`, `1m`, `1h`).
    case invalidDuration = "LC1052"
    /// A number outside its allowed range.
    case outOfRange = "LC1053"
    /// A word that is not one of the allowed choices.
    case invalidChoice = "LC1054"
    /// A regular expression that does not compile, or a group it does not have.
    case invalidRegex = "LC1055"
    /// The same endpoint used for two different sockets.
    case endpointReused = "LC1056"
    /// A key extractor that is not exactly one of `item`, `json`, `regex`, `field`.
    case invalidKey = "LC1060"
    /// `aggregate: count-by-key` or `sum-by-key` without `key`.
    case aggregateNeedsKey = "LC1061"
    /// `key` or `key-name` with an aggregate that does not use a key.
    case keyWithoutAggregate = "LC1062"
    /// A circuit breaker whose `failures` exceed its `window`: it could never open.
    case breakerNeverOpens = "LC1070"
    /// Requirements that contradict each other: `gpu: false` with `min-gpus`, `gpu-model` or `min-gpu-memory`.
    case contradictoryRequirements = "LC1073"
    /// `spread: true` on a stage with `group-by`, which pins each key to one worker.
    case spreadWithGroupBy = "LC1074"
}
