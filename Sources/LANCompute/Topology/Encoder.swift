// Writes a topology model back as schema version 1 YAML that loads into the same model.

/// Turns a `Topology` into YAML text.
///
/// The output is meant for people as well as for the loader: keys in reference order, values
/// equal to their defaults left out, `from:` written only where it differs from the default.
public enum TopologyEncoder {
    public static func yaml(for topology: Topology) -> String {
        var lines: [String] = []
        lines.append("version: \(topology.version)")
        lines.append("name: \(scalar(topology.name))")
        if let description = topology.description {
            lines.append("description: \(scalar(description))")
        }

        lines.append("source:")
        switch topology.source.kind {
        case let .file(path): lines.append("  file: \(scalar(path))")
        case .stdin: lines.append("  stdin: true")
        case let .pull(endpoint): lines.append("  pull: \(scalar(endpoint))")
        case let .generate(count, size): lines.append("  generate: {count: \(count), size: \(ByteSize.format(size))}")
        }
        if topology.source.format != .lines {
            lines.append("  format: \(topology.source.format.rawValue)")
        }

        lines.append("stages:")
        for (index, stage) in topology.stages.enumerated() {
            let previous = index > 0 ? topology.stages[index - 1].name : nil
            lines.append(contentsOf: stageLines(stage, previous: previous))
        }

        lines.append(contentsOf: sinkLines(topology.sink))
        lines.append(contentsOf: brokerLines(topology.broker))
        return lines.joined(separator: "\n") + "\n"
    }

    private static func stageLines(_ stage: StageSpec, previous: String?) -> [String] {
        var lines = ["  - name: \(scalar(stage.name))"]
        let indent = "    "
        switch stage.handler {
        case let .builtin(name, options):
            lines.append("\(indent)builtin: \(scalar(name))")
            if !options.isEmpty {
                lines.append("\(indent)options:")
                for (key, value) in options.sorted(by: { $0.key < $1.key }) {
                    lines.append("\(indent)  \(scalar(key)): \(scalar(value))")
                }
            }
        case let .exec(exec):
            lines.append("\(indent)exec:")
            lines.append("\(indent)  command: [\(exec.command.map(scalar).joined(separator: ", "))]")
            if exec.mode != .stream { lines.append("\(indent)  mode: \(exec.mode.rawValue)") }
            if exec.output != .line { lines.append("\(indent)  output: \(exec.output.rawValue)") }
            if let directory = exec.workingDirectory {
                lines.append("\(indent)  working-directory: \(scalar(directory))")
            }
            if !exec.environment.isEmpty {
                lines.append("\(indent)  environment:")
                for (key, value) in exec.environment.sorted(by: { $0.key < $1.key }) {
                    lines.append("\(indent)    \(scalar(key)): \(scalar(value))")
                }
            }
        case .external:
            break
        }
        let defaultFrom = previous.map { [$0] } ?? []
        if stage.from != defaultFrom {
            if stage.from.isEmpty {
                lines.append("\(indent)from: source")
            } else {
                lines.append("\(indent)from: [\(stage.from.map(scalar).joined(separator: ", "))]")
            }
        }
        if let replicas = stage.replicas { lines.append("\(indent)replicas: \(replicas)") }
        if let credit = stage.credit { lines.append("\(indent)credit: \(credit)") }
        lines.append(contentsOf: requirementLines("requires", stage.requires, indent: indent))
        lines.append(contentsOf: requirementLines("prefers", stage.prefers, indent: indent))
        if let key = stage.groupBy { lines.append("\(indent)group-by: \(keyText(key))") }
        if stage.priority != 0 { lines.append("\(indent)priority: \(stage.priority)") }
        if let timeout = stage.timeout { lines.append("\(indent)timeout: \(DurationLiteral.format(timeout))") }
        if stage.maxAttempts != 3 { lines.append("\(indent)max-attempts: \(stage.maxAttempts)") }
        if let deadline = stage.deadline { lines.append("\(indent)deadline: \(DurationLiteral.format(deadline))") }
        if !stage.chain { lines.append("\(indent)chain: false") }
        if stage.spread { lines.append("\(indent)spread: true") }
        if !stage.breaker.enabled {
            lines.append("\(indent)breaker: false")
        } else if stage.breaker != .standard {
            lines.append("\(indent)breaker: {failures: \(stage.breaker.failures), window: \(stage.breaker.window), cooldown: \(DurationLiteral.format(stage.breaker.cooldown))}")
        }
        return lines
    }

    private static func requirementLines(_ key: String, _ requirements: Requirements, indent: String) -> [String] {
        guard !requirements.isEmpty else { return [] }
        var lines = ["\(indent)\(key):"]
        let inner = indent + "  "
        if let arch = requirements.arch { lines.append("\(inner)arch: \(scalar(arch))") }
        if let os = requirements.os { lines.append("\(inner)os: \(scalar(os))") }
        if let gpu = requirements.gpu { lines.append("\(inner)gpu: \(gpu)") }
        if let count = requirements.minGPUs { lines.append("\(inner)min-gpus: \(count)") }
        if let model = requirements.gpuModel { lines.append("\(inner)gpu-model: \(scalar(model))") }
        if let memory = requirements.minGPUMemory { lines.append("\(inner)min-gpu-memory: \(ByteSize.format(memory))") }
        if let memory = requirements.minMemory { lines.append("\(inner)min-memory: \(ByteSize.format(memory))") }
        if let cores = requirements.minCores { lines.append("\(inner)min-cores: \(cores)") }
        if !requirements.labels.isEmpty {
            lines.append("\(inner)labels:")
            for (name, value) in requirements.labels.sorted(by: { $0.key < $1.key }) {
                lines.append("\(inner)  \(scalar(name)): \(scalar(value))")
            }
        }
        return lines
    }

    private static func sinkLines(_ sink: SinkSpec) -> [String] {
        var lines = ["sink:"]
        switch sink.kind {
        case let .file(path): lines.append("  file: \(scalar(path))")
        case .stdout: lines.append("  stdout: true")
        case let .push(endpoint): lines.append("  push: \(scalar(endpoint))")
        }
        lines.append("  format: \(sink.format.rawValue)")
        if sink.aggregate != .none { lines.append("  aggregate: \(sink.aggregate.rawValue)") }
        if let key = sink.key { lines.append("  key: \(keyText(key))") }
        if sink.keyName != "key" { lines.append("  key-name: \(scalar(sink.keyName))") }
        return lines
    }

    private static func brokerLines(_ broker: BrokerSettings) -> [String] {
        let defaults = BrokerSettings()
        var lines: [String] = []
        if broker.bind != defaults.bind { lines.append("  bind: \(scalar(broker.bind))") }
        if broker.events != defaults.events { lines.append("  events: \(scalar(broker.events))") }
        if broker.aggregator != defaults.aggregator { lines.append("  aggregator: \(scalar(broker.aggregator))") }
        if broker.heartbeatInterval != defaults.heartbeatInterval {
            lines.append("  heartbeat-interval: \(DurationLiteral.format(broker.heartbeatInterval))")
        }
        if broker.heartbeatLiveness != defaults.heartbeatLiveness {
            lines.append("  heartbeat-liveness: \(broker.heartbeatLiveness)")
        }
        if broker.queueLimit != defaults.queueLimit { lines.append("  queue-limit: \(broker.queueLimit)") }
        return lines.isEmpty ? [] : ["broker:"] + lines
    }

    private static func keyText(_ key: KeyExtractor) -> String {
        switch key {
        case .item: return "item"
        case let .jsonField(field): return "{json: \(scalar(field))}"
        case let .regex(pattern, group): return "{regex: \(scalar(pattern)), group: \(group)}"
        case let .field(index): return "{field: \(index)}"
        }
    }

    /// `text` as a YAML scalar: plain when that is unambiguous, double-quoted otherwise.
    /// `${` is escaped so that substitution gives the text back.
    static func scalar(_ text: String) -> String {
        let escaped = Substitution.escape(text)
        if isSafePlain(escaped) { return escaped }
        var quoted = "\""
        for character in escaped.unicodeScalars {
            switch character {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            case "\r": quoted += "\\r"
            default:
                if character.value < 0x20 || character.value == 0x7F {
                    quoted += "\\x" + String(character.value, radix: 16, uppercase: true).leftPadded(to: 2)
                } else {
                    quoted.unicodeScalars.append(character)
                }
            }
        }
        return quoted + "\""
    }

    private static func isSafePlain(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !["~", "null", "Null", "NULL"].contains(text) else { return false }
        func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar))
        }
        guard isWordScalar(first) || first == "_" || first == "/" || first == "." else { return false }
        guard !text.hasSuffix(":") else { return false }
        return text.unicodeScalars.allSatisfy { isWordScalar($0) || "_-./:@+".unicodeScalars.contains($0) }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
