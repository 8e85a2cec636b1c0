// Draws a topology as a graph (Graphviz DOT or Mermaid): source, stages and sink with their edges, and the chains.

import Foundation

/// Renders the pipeline's DAG for people: each stage node shows its handler, replicas and placement.
public enum TopologyGraph {
    public enum Format: String, Sendable, CaseIterable {
        case dot
        case mermaid
    }

    public static func render(_ topology: Topology, format: Format) -> String {
        switch format {
        case .dot: return dot(topology)
        case .mermaid: return mermaid(topology)
        }
    }

    // MARK: What each node says

    static func sourceLines(_ source: SourceSpec) -> [String] {
        let kind: String
        switch source.kind {
        case let .file(path): kind = "file: \(path)"
        case .stdin: kind = "stdin"
        case let .pull(endpoint): kind = "pull: \(endpoint)"
        case let .generate(count, size): kind = "generate: \(count) x \(ByteSize.format(size))"
        }
        return ["source", kind, "format: \(source.format.rawValue)"]
    }

    static func sinkLines(_ sink: SinkSpec) -> [String] {
        var lines = ["sink"]
        switch sink.kind {
        case let .file(path): lines.append("file: \(path)")
        case .stdout: lines.append("stdout")
        case let .push(endpoint): lines.append("push: \(endpoint)")
        }
        lines.append("format: \(sink.format.rawValue)")
        if sink.aggregate != .none {
            var aggregate = "aggregate: \(sink.aggregate.rawValue)"
            if let key = sink.key { aggregate += " by \(describe(key))" }
            lines.append(aggregate)
        }
        return lines
    }

    static func stageLines(_ stage: StageSpec) -> [String] {
        var lines = [stage.name]
        switch stage.handler {
        case let .builtin(name, options):
            let shown = options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            lines.append("builtin: \(name)" + (shown.isEmpty ? "" : " (\(shown.joined(separator: ", ")))"))
        case let .exec(exec):
            lines.append("exec \(exec.mode.rawValue): \(exec.command.joined(separator: " "))")
        case .external:
            lines.append("external workers (MDP)")
        }
        switch stage.slotRule {
        case .fixed(let count): lines.append("replicas: \(count)")
        case .perCore: lines.append("replicas: one per core")
        }
        if !stage.requires.isEmpty { lines.append("requires: \(describe(stage.requires))") }
        if !stage.prefers.isEmpty { lines.append("prefers: \(describe(stage.prefers))") }
        if let key = stage.groupBy { lines.append("group-by: \(describe(key))") }
        if stage.spread { lines.append("spread over hosts") }
        return lines
    }

    static func describe(_ requirements: Requirements) -> String {
        var parts: [String] = []
        if let arch = requirements.arch { parts.append("arch=\(arch)") }
        if let os = requirements.os { parts.append("os=\(os)") }
        if let gpu = requirements.gpu { parts.append(gpu ? "gpu" : "no gpu") }
        if let count = requirements.minGPUs { parts.append("gpus>=\(count)") }
        if let model = requirements.gpuModel { parts.append("gpu-model~\(model)") }
        if let memory = requirements.minGPUMemory { parts.append("gpu-memory>=\(ByteSize.format(memory))") }
        if let memory = requirements.minMemory { parts.append("memory>=\(ByteSize.format(memory))") }
        if let cores = requirements.minCores { parts.append("cores>=\(cores)") }
        for (name, value) in requirements.labels.sorted(by: { $0.key < $1.key }) { parts.append("\(name)=\(value)") }
        return parts.joined(separator: ", ")
    }

    static func describe(_ key: KeyExtractor) -> String {
        switch key {
        case .item: return "item"
        case let .jsonField(field): return "json \(field)"
        case let .regex(pattern, group): return "regex \(pattern) group \(group)"
        case let .field(index): return "field \(index)"
        }
    }

    /// Every edge, by node index: -1 is the source, `stages.count` is the sink.
    static func edges(_ topology: Topology) -> [(from: Int, to: Int)] {
        var indexByName: [String: Int] = [:]
        for (index, stage) in topology.stages.enumerated() where indexByName[stage.name] == nil {
            indexByName[stage.name] = index
        }
        var result: [(from: Int, to: Int)] = []
        for (index, stage) in topology.stages.enumerated() {
            if stage.from.isEmpty {
                result.append((-1, index))
            } else {
                for name in stage.from {
                    if let upstream = indexByName[name] { result.append((upstream, index)) }
                }
            }
        }
        let terminal = Set(topology.terminalStages.map(\.name))
        for (index, stage) in topology.stages.enumerated() where terminal.contains(stage.name) {
            result.append((index, topology.stages.count))
        }
        return result
    }

    /// The graph node of the source (-1), a stage (its index) or the sink (the stage count).
    static func nodeID(_ index: Int, in topology: Topology) -> String {
        if index < 0 { return "source" }
        if index == topology.stages.count { return "sink" }
        return "stage\(index)"
    }

    /// The chains as node indices, and the edges inside them (drawn bold: no broker round trip).
    static func chains(_ topology: Topology) -> (members: [[Int]], plan: ChainPlan, edges: Set<[Int]>) {
        let plan = ChainPlan(topology)
        var indexByName: [String: Int] = [:]
        for (index, stage) in topology.stages.enumerated() where indexByName[stage.name] == nil { indexByName[stage.name] = index }
        let members = plan.chains.map { $0.compactMap { indexByName[$0] } }
        var edges = Set<[Int]>()
        for chain in members { for (from, to) in zip(chain, chain.dropFirst()) { edges.insert([from, to]) } }
        return (members, plan, edges)
    }

    static func chainLabel(_ chain: [String]) -> String {
        "chain: \(ChainPlan.describe(chain)) (one worker slot)"
    }

    // MARK: Graphviz

    static func dot(_ topology: Topology) -> String {
        let id = { (index: Int) in nodeID(index, in: topology) }
        func label(_ lines: [String]) -> String {
            "\"" + lines.map(dotEscape).joined(separator: "\\n") + "\""
        }
        var out = ["digraph \"\(dotEscape(topology.name))\" {"]
        out.append("  rankdir=LR;")
        out.append("  node [shape=box, style=rounded, fontname=\"Helvetica\"];")
        out.append("  source [shape=invhouse, label=\(label(sourceLines(topology.source)))];")
        for (index, stage) in topology.stages.enumerated() {
            out.append("  \(id(index)) [label=\(label(stageLines(stage)))];")
        }
        out.append("  sink [shape=house, label=\(label(sinkLines(topology.sink)))];")
        let chained = chains(topology)
        for (number, chain) in chained.members.enumerated() {
            out.append("  subgraph cluster_chain\(number) {")
            out.append("    label=\(label([chainLabel(chained.plan.chains[number])]));")
            out.append("    style=dashed;")
            out.append("    " + chain.map { id($0) + ";" }.joined(separator: " "))
            out.append("  }")
        }
        for edge in edges(topology) {
            let bold = chained.edges.contains([edge.from, edge.to]) ? " [style=bold, label=\"chained\"]" : ""
            out.append("  \(id(edge.from)) -> \(id(edge.to))\(bold);")
        }
        for boundary in chained.plan.boundaries {
            out.append("  // not chained: \(boundary.upstream) -> \(boundary.downstream): \(boundary.reason)")
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    static func dotEscape(_ text: String) -> String {
        text.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
    }

    // MARK: Mermaid

    static func mermaid(_ topology: Topology) -> String {
        let id = { (index: Int) in nodeID(index, in: topology) }
        func label(_ lines: [String]) -> String {
            "\"" + lines.map(mermaidEscape).joined(separator: "<br/>") + "\""
        }
        var out = ["flowchart LR"]
        out.append("  %% \(topology.name)")
        out.append("  source[/\(label(sourceLines(topology.source)))/]")
        for (index, stage) in topology.stages.enumerated() {
            out.append("  \(id(index))[\(label(stageLines(stage)))]")
        }
        out.append("  sink[\\\(label(sinkLines(topology.sink)))/]")
        let chained = chains(topology)
        for (number, chain) in chained.members.enumerated() {
            out.append("  subgraph chain\(number)[\(label([chainLabel(chained.plan.chains[number])]))]")
            for member in chain { out.append("    \(id(member))") }
            out.append("  end")
        }
        for edge in edges(topology) {
            let arrow = chained.edges.contains([edge.from, edge.to]) ? "==>|chained|" : "-->"
            out.append("  \(id(edge.from)) \(arrow) \(id(edge.to))")
        }
        for boundary in chained.plan.boundaries {
            out.append("  %% not chained: \(boundary.upstream) -> \(boundary.downstream): \(boundary.reason)")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Mermaid labels take entity codes (#quot;); quotes and angle brackets would end or break them.
    static func mermaidEscape(_ text: String) -> String {
        text.replacingAll("&", with: "#amp;").replacingAll("\"", with: "#quot;")
            .replacingAll("<", with: "#lt;").replacingAll(">", with: "#gt;")
    }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        components(separatedBy: target).joined(separator: replacement)
    }
}
