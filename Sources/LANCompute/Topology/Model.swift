// The validated topology model: what a pipeline file means once it has been loaded and checked.

/// A position in a topology file, 1-based, as editors show it.
public struct SourceLocation: Hashable, Sendable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A whole pipeline: one source, a DAG of stages, one sink.
public struct Topology: Sendable, Equatable, Codable {
    public var version: Int
    public var name: String
    public var description: String?
    public var source: SourceSpec
    public var stages: [StageSpec]
    public var sink: SinkSpec
    public var broker: BrokerSettings
    /// Where each value came from in the file, by key path; empty for a topology built in code.
    public var sourceMap = SourceMap()
    /// The chains the broker runs (``ChainPlan``), head first, as `mmi.topology` announces them to
    /// workers; nil in a topology file and from a broker that runs no chains, whose workers then run
    /// every stage alone.
    public var chains: [[String]]?
    /// Set by a broker that reads the owner policy's `yielding` refresh and handed-back outcomes
    /// (Docs/protocol.md, 7.6); nil in a topology file and from an older broker.
    public var ownerPolicy: Bool?

    public init(
        version: Int = 1, name: String, description: String? = nil, source: SourceSpec,
        stages: [StageSpec], sink: SinkSpec, broker: BrokerSettings = BrokerSettings()
    ) {
        self.version = version
        self.name = name
        self.description = description
        self.source = source
        self.stages = stages
        self.sink = sink
        self.broker = broker
    }

    /// The stage with this name, if any.
    public func stage(named name: String) -> StageSpec? {
        stages.first { $0.name == name }
    }

    /// The stages that read the output of `name` (`name` nil: the stages that read the source).
    public func downstream(of name: String?) -> [StageSpec] {
        stages.filter { stage in
            if let name { return stage.from.contains(name) }
            return stage.from.isEmpty
        }
    }

    /// Stages whose output nobody reads: their outputs go to the sink.
    public var terminalStages: [StageSpec] {
        stages.filter { stage in !stages.contains { $0.from.contains(stage.name) } }
    }
}

/// Where items come from.
public struct SourceSpec: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        case file(path: String)
        case stdin
        /// External producers PUSH items to this endpoint, which the broker binds with PULL.
        case pull(endpoint: String)
        /// Synthetic items, for benchmarks: `count` items of `size` bytes each.
        case generate(count: Int, size: Int)
    }

    public enum Format: String, Sendable, Equatable, Codable {
        /// One item per line, without its line terminator.
        case lines
        /// Each item is a 4-byte big-endian length followed by that many bytes.
        case binary
    }

    public var kind: Kind
    public var format: Format

    public init(kind: Kind, format: Format = .lines) {
        self.kind = kind
        self.format = format
    }
}

/// Where final outputs go, and how they are aggregated first.
public struct SinkSpec: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        case file(path: String)
        case stdout
        /// The aggregator PUSHes each output line to this endpoint (it connects).
        case push(endpoint: String)
    }

    public enum Format: String, Sendable, Equatable, Codable {
        /// One JSON value per line.
        case jsonl
        /// One output item per line, as it is.
        case lines
    }

    public enum Aggregate: String, Sendable, Equatable, Codable {
        case none
        /// `{"<key-name>": key, "count": n}` per distinct key.
        case countByKey = "count-by-key"
        /// `{"<key-name>": key, "sum": x}` per distinct key; the item's value is a number.
        case sumByKey = "sum-by-key"
        /// One JSON array of every output, written when the run ends.
        case collect
    }

    public var kind: Kind
    public var format: Format
    public var aggregate: Aggregate
    /// How to find the key of an output item, for the `*-by-key` aggregates.
    public var key: KeyExtractor?
    /// The JSON field name the key is written under in aggregated output (default "key").
    public var keyName: String

    public init(
        kind: Kind, format: Format = .lines, aggregate: Aggregate = .none,
        key: KeyExtractor? = nil, keyName: String = "key"
    ) {
        self.kind = kind
        self.format = format
        self.aggregate = aggregate
        self.key = key
        self.keyName = keyName
    }
}

/// How a key is taken from an item (for `group-by` and keyed aggregates).
public enum KeyExtractor: Sendable, Equatable, Codable {
    /// The whole item is the key.
    case item
    /// A top-level (or dotted path) field of the item parsed as a JSON object.
    case jsonField(String)
    /// The given capture group (0 = whole match) of a regular expression.
    case regex(pattern: String, group: Int)
    /// The n-th (0-based) whitespace-separated field.
    case field(Int)
}

/// Broker endpoints and liveness settings.
public struct BrokerSettings: Sendable, Equatable, Codable {
    public var bind: String
    public var events: String
    public var aggregator: String
    /// How often peers send heartbeats. With the liveness, 250 ms x 4 declares a silent peer dead
    /// after 1 s: inside the 1.5 s the project promises for a hung or cut-off worker, with room for a
    /// loaded machine, while three heartbeats in a row may still go missing.
    public var heartbeatInterval: Duration
    public var heartbeatLiveness: Int
    /// How many items may wait in a stage's queue before the source stops reading.
    public var queueLimit: Int

    public init(
        bind: String = "tcp://127.0.0.1:5555", events: String = "tcp://127.0.0.1:5556",
        aggregator: String = "tcp://127.0.0.1:5557", heartbeatInterval: Duration = .milliseconds(250),
        heartbeatLiveness: Int = 4, queueLimit: Int = 10_000
    ) {
        self.bind = bind
        self.events = events
        self.aggregator = aggregator
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatLiveness = heartbeatLiveness
        self.queueLimit = queueLimit
    }
}

/// One stage of the pipeline.
public struct StageSpec: Sendable, Equatable, Codable {
    public var name: String
    public var handler: HandlerSpec
    /// Upstream stage names; empty means the stage reads the source.
    public var from: [String]
    /// Handler slots per worker process; nil: the worker decides (``slotRule``).
    public var replicas: Int?
    /// Items a worker may hold in flight for this stage; nil: the worker adapts it to its link, starting from its default (Docs/protocol.md 7.7).
    public var credit: Int?
    public var requires: Requirements
    public var prefers: Requirements
    public var groupBy: KeyExtractor?
    public var priority: Int
    /// Longest one attempt may take before it counts as failed; nil: no limit.
    public var timeout: Duration?
    public var maxAttempts: Int
    /// Longest an item may wait in this stage (queue plus attempts) before it is dead-lettered.
    public var deadline: Duration?
    /// Whether the stage may run chained with its neighbours in one worker slot (`chain: false`
    /// keeps it a stage of its own, dispatched by the broker); see ``ChainPlan``.
    public var chain: Bool
    /// Whether the stage's items are balanced across hosts (`spread: true`) rather than worker
    /// processes; see ``PlacementPicker``.
    public var spread: Bool
    /// When the broker quarantines a worker that keeps failing this stage's items (``BreakerPolicy``).
    public var breaker: BreakerPolicy
    /// Where the stage was written (its first key), when it was loaded from a file; the position
    /// of each of its keys is in `Topology.sourceMap`, by key path (`stages[2].replicas`).
    public var location: SourceLocation?

    public init(
        name: String, handler: HandlerSpec, from: [String] = [], replicas: Int? = nil, credit: Int? = nil,
        requires: Requirements = Requirements(), prefers: Requirements = Requirements(),
        groupBy: KeyExtractor? = nil, priority: Int = 0, timeout: Duration? = nil,
        maxAttempts: Int = 3, deadline: Duration? = nil, chain: Bool = true, spread: Bool = false, breaker: BreakerPolicy = .standard,
        location: SourceLocation? = nil
    ) {
        self.name = name
        self.handler = handler
        self.from = from
        self.replicas = replicas
        self.credit = credit
        self.requires = requires
        self.prefers = prefers
        self.groupBy = groupBy
        self.priority = priority
        self.timeout = timeout
        self.maxAttempts = maxAttempts
        self.deadline = deadline
        self.chain = chain
        self.spread = spread
        self.breaker = breaker
        self.location = location
    }
}

/// A stage's circuit breaker: a worker whose recent attempts at the stage mostly fail gets none of its
/// items for a cool-down, then one probe (Docs/cluster.md, Health).
public struct BreakerPolicy: Sendable, Equatable, Codable {
    /// `breaker: false` turns it off: every worker keeps getting items whatever it fails.
    public var enabled: Bool
    /// Failed attempts among the last `window` outcomes that open the breaker (when they are also at
    /// least half of them).
    public var failures: Int
    /// How many of a worker's latest outcomes at the stage are weighed.
    public var window: Int
    /// How long the first quarantine lasts; it doubles each time a probe fails, up to ``maxCooldown``.
    public var cooldown: Duration

    public static let standard = BreakerPolicy(enabled: true, failures: 5, window: 20, cooldown: .seconds(30))
    public static let off = BreakerPolicy(enabled: false, failures: 5, window: 20, cooldown: .seconds(30))

    public init(enabled: Bool, failures: Int, window: Int, cooldown: Duration) {
        self.enabled = enabled
        self.failures = failures
        self.window = window
        self.cooldown = cooldown
    }

    /// The longest quarantine: ten first cool-downs (5 minutes with the standard 30 s).
    public var maxCooldown: Duration { cooldown * 10 }

    enum CodingKeys: String, CodingKey { case enabled, failures, window, cooldown }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(enabled: try container.decode(Bool.self, forKey: .enabled), failures: try container.decode(Int.self, forKey: .failures),
                  window: try container.decode(Int.self, forKey: .window), cooldown: try container.decodeSeconds(forKey: .cooldown))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(failures, forKey: .failures)
        try container.encode(window, forKey: .window)
        try container.encodeSeconds(cooldown, forKey: .cooldown)
    }
}

/// What runs a stage's items.
/// How many handler slots a worker process gives a stage.
public enum SlotRule: Sendable, Equatable {
    /// Exactly this many (`replicas: N`).
    case fixed(Int)
    /// One per logical core the worker may use: an exec stage without `replicas`.
    case perCore
}

extension StageSpec {
    /// `replicas` when written; otherwise one slot per core for exec stages (a child process each,
    /// so they fill the machine), and one for builtins and Swift stages, as before `replicas` was optional.
    public var slotRule: SlotRule {
        if let replicas { return .fixed(replicas) }
        if case .exec = handler { return .perCore }
        return .fixed(1)
    }
}

public enum HandlerSpec: Sendable, Equatable, Codable {
    /// An operator shipped with LANCompute, by name, with its string options.
    case builtin(name: String, options: [String: String])
    /// A user program.
    case exec(ExecSpec)
    /// Served by external workers that register the stage name over MDP/0.1.
    case external
}

/// A user program that serves a stage (never run through a shell).
public struct ExecSpec: Sendable, Equatable, Codable {
    public enum Mode: String, Sendable, Equatable, Codable {
        /// One long-lived child per slot, one line in and one line out per item.
        case stream
        /// One process per item.
        case perItem = "per-item"
    }

    public enum Output: String, Sendable, Equatable, Codable {
        /// Each output line is one output item.
        case line
        /// Each output line is a JSON array of 0...N output strings.
        case jsonArray = "json-array"
    }

    public var command: [String]
    public var mode: Mode
    public var output: Output
    /// Working directory for the child, relative to the worker's own; nil: the worker's.
    public var workingDirectory: String?
    /// Extra environment variables for the child.
    public var environment: [String: String]

    public init(
        command: [String], mode: Mode = .stream, output: Output = .line,
        workingDirectory: String? = nil, environment: [String: String] = [:]
    ) {
        self.command = command
        self.mode = mode
        self.output = output
        self.workingDirectory = workingDirectory
        self.environment = environment
    }
}

/// Hardware and placement constraints; every field nil/empty means "anything".
public struct Requirements: Sendable, Equatable, Codable {
    /// `x86_64`, `arm64` (aarch64 is normalised to arm64).
    public var arch: String?
    /// `linux`, `macos`.
    public var os: String?
    /// true: needs a GPU; false: must not have one.
    public var gpu: Bool?
    public var minMemory: Int?
    public var minCores: Int?
    /// At least this many GPUs that match ``gpuModel`` and ``minGPUMemory`` (`min-gpus`).
    public var minGPUs: Int?
    /// Part of the GPU's model name, compared without regard to case (`gpu-model`).
    public var gpuModel: String?
    /// Bytes of memory the GPU has (`min-gpu-memory`); on unified memory, Metal's recommended working set.
    public var minGPUMemory: Int?
    public var labels: [String: String]

    public init(
        arch: String? = nil, os: String? = nil, gpu: Bool? = nil, minMemory: Int? = nil,
        minCores: Int? = nil, minGPUs: Int? = nil, gpuModel: String? = nil, minGPUMemory: Int? = nil,
        labels: [String: String] = [:]
    ) {
        self.arch = arch
        self.os = os
        self.gpu = gpu
        self.minMemory = minMemory
        self.minCores = minCores
        self.minGPUs = minGPUs
        self.gpuModel = gpuModel
        self.minGPUMemory = minGPUMemory
        self.labels = labels
    }

    /// Whether any of the GPU keys (`min-gpus`, `gpu-model`, `min-gpu-memory`) is set.
    public var describesGPUs: Bool { minGPUs != nil || gpuModel != nil || minGPUMemory != nil }

    public var isEmpty: Bool {
        arch == nil && os == nil && gpu == nil && minMemory == nil && minCores == nil && !describesGPUs && labels.isEmpty
    }
}

// MARK: JSON coding

// The topology travels as JSON (`mmi.topology`) to workers in any language, so a duration is
// written as seconds, a plain number (`0.5`), not as Swift's `[seconds, attoseconds]` pair.
// Decoding rounds to the nanosecond: the JSON number is binary floating point, and a
// topology's durations are never finer than that.

extension Duration {
    /// The duration in seconds, as JSON carries it.
    var jsonSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// A duration from JSON seconds, rounded to the nanosecond; nil for a negative, infinite or absurd number.
    init?(jsonSeconds seconds: Double) {
        let nanoseconds = (seconds * 1e9).rounded()
        guard seconds.isFinite, seconds >= 0, nanoseconds < Double(Int64.max) else { return nil }
        self = .nanoseconds(Int64(nanoseconds))
    }
}

extension KeyedEncodingContainer {
    mutating func encodeSeconds(_ duration: Duration, forKey key: Key) throws {
        try encode(duration.jsonSeconds, forKey: key)
    }

    mutating func encodeSecondsIfPresent(_ duration: Duration?, forKey key: Key) throws {
        try encodeIfPresent(duration?.jsonSeconds, forKey: key)
    }
}

extension KeyedDecodingContainer {
    func decodeSeconds(forKey key: Key) throws -> Duration {
        let seconds = try decode(Double.self, forKey: key)
        guard let duration = Duration(jsonSeconds: seconds) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "\(seconds) is not a duration in seconds")
        }
        return duration
    }

    func decodeSecondsIfPresent(forKey key: Key) throws -> Duration? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decodeSeconds(forKey: key)
    }
}

extension BrokerSettings {
    enum CodingKeys: String, CodingKey {
        case bind, events, aggregator, heartbeatInterval, heartbeatLiveness, queueLimit
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            bind: try container.decode(String.self, forKey: .bind),
            events: try container.decode(String.self, forKey: .events),
            aggregator: try container.decode(String.self, forKey: .aggregator),
            heartbeatInterval: try container.decodeSeconds(forKey: .heartbeatInterval),
            heartbeatLiveness: try container.decode(Int.self, forKey: .heartbeatLiveness),
            queueLimit: try container.decode(Int.self, forKey: .queueLimit))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(bind, forKey: .bind)
        try container.encode(events, forKey: .events)
        try container.encode(aggregator, forKey: .aggregator)
        try container.encodeSeconds(heartbeatInterval, forKey: .heartbeatInterval)
        try container.encode(heartbeatLiveness, forKey: .heartbeatLiveness)
        try container.encode(queueLimit, forKey: .queueLimit)
    }
}

extension StageSpec {
    enum CodingKeys: String, CodingKey {
        case name, handler, from, replicas, replicasByWorker, credit, requires, prefers, groupBy, priority, timeout, maxAttempts, deadline, chain, spread, breaker, location
    }

    /// Set in an encoder's `userInfo` when the encoding is hashed (the journal's topology hash):
    /// the stage is then written as it was before `replicas` became optional.
    static let hashingKey = CodingUserInfoKey(rawValue: "lancompute.topologyHash")!

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            handler: try container.decode(HandlerSpec.self, forKey: .handler),
            from: try container.decode([String].self, forKey: .from),
            // `replicasByWorker` marks a stage without `replicas`; `replicas` itself is always written
            // (as 1 then), since workers of earlier versions require it.
            replicas: try container.decodeIfPresent(Bool.self, forKey: .replicasByWorker) == true
                ? nil : try container.decodeIfPresent(Int.self, forKey: .replicas),
            credit: try container.decodeIfPresent(Int.self, forKey: .credit),
            requires: try container.decode(Requirements.self, forKey: .requires),
            prefers: try container.decode(Requirements.self, forKey: .prefers),
            groupBy: try container.decodeIfPresent(KeyExtractor.self, forKey: .groupBy),
            priority: try container.decode(Int.self, forKey: .priority),
            timeout: try container.decodeSecondsIfPresent(forKey: .timeout),
            maxAttempts: try container.decode(Int.self, forKey: .maxAttempts),
            deadline: try container.decodeSecondsIfPresent(forKey: .deadline),
            chain: try container.decodeIfPresent(Bool.self, forKey: .chain) ?? true,
            spread: try container.decodeIfPresent(Bool.self, forKey: .spread) ?? false,
            breaker: try container.decodeIfPresent(BreakerPolicy.self, forKey: .breaker) ?? .standard,
            location: try container.decodeIfPresent(SourceLocation.self, forKey: .location))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(handler, forKey: .handler)
        try container.encode(from, forKey: .from)
        // An earlier worker requires the key and runs 1 slot without it, as every worker did then.
        try container.encode(replicas ?? 1, forKey: .replicas)
        // Left out of the hash, so a journal of a file without `replicas` resumes after an upgrade
        // (slots do not change item ids).
        if replicas == nil, encoder.userInfo[Self.hashingKey] as? Bool != true {
            try container.encode(true, forKey: .replicasByWorker)
        }
        try container.encodeIfPresent(credit, forKey: .credit)
        try container.encode(requires, forKey: .requires)
        try container.encode(prefers, forKey: .prefers)
        try container.encodeIfPresent(groupBy, forKey: .groupBy)
        try container.encode(priority, forKey: .priority)
        try container.encodeSecondsIfPresent(timeout, forKey: .timeout)
        try container.encode(maxAttempts, forKey: .maxAttempts)
        try container.encodeSecondsIfPresent(deadline, forKey: .deadline)
        // Written only when off, so a topology without chains reads the same to older workers.
        if !chain { try container.encode(false, forKey: .chain) }
        if spread { try container.encode(true, forKey: .spread) }
        if breaker != .standard { try container.encode(breaker, forKey: .breaker) }
        try container.encodeIfPresent(location, forKey: .location)
    }
}
