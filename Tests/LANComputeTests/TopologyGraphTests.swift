// Checks the DOT and Mermaid drawings of a pipeline.

import Testing
@testable import LANCompute

@Suite struct TopologyGraphTests {
    static let topology = Topology(
        name: "shapes", source: SourceSpec(kind: .file(path: "in.txt")),
        stages: [
            StageSpec(name: "parse", handler: .builtin(name: "grep", options: ["pattern": "\"x\""])),
            StageSpec(
                name: "score", handler: .exec(ExecSpec(command: ["python3", "score.py"])), from: ["parse"], replicas: 2,
                requires: Requirements(arch: "arm64", minMemory: 2 << 30), prefers: Requirements(gpu: true), groupBy: .jsonField("user")),
            StageSpec(name: "audit", handler: .external, from: ["parse"]),
        ],
        sink: SinkSpec(kind: .stdout, format: .jsonl, aggregate: .countByKey, key: .item, keyName: "word"))

    @Test func dotHasEveryNodeAndEdge() {
        let dot = TopologyGraph.render(Self.topology, format: .dot)
        #expect(dot.hasPrefix("digraph \"shapes\" {\n"))
        #expect(dot.contains("stage0 [label=\"parse\\nbuiltin: grep (pattern=\\\"x\\\")\\nreplicas: 1\"];"))
        #expect(dot.contains("stage1 [label=\"score\\nexec stream: python3 score.py\\nreplicas: 2\\nrequires: arch=arm64, memory>=2GiB\\nprefers: gpu\\ngroup-by: json user\"];"))
        #expect(dot.contains("stage2 [label=\"audit\\nexternal workers (MDP)\\nreplicas: 1\"];"))
        for edge in ["source -> stage0;", "stage0 -> stage1;", "stage0 -> stage2;", "stage1 -> sink;", "stage2 -> sink;"] {
            #expect(dot.contains(edge), "\(edge)")
        }
        #expect(!dot.contains("stage0 -> sink;"))
        #expect(dot.hasSuffix("}\n"))
    }

    @Test func mermaidHasEveryNodeAndEdge() {
        let mermaid = TopologyGraph.render(Self.topology, format: .mermaid)
        #expect(mermaid.hasPrefix("flowchart LR\n"))
        #expect(mermaid.contains("stage0[\"parse<br/>builtin: grep (pattern=#quot;x#quot;)<br/>replicas: 1\"]"))
        #expect(mermaid.contains("sink[\\\"sink<br/>stdout<br/>format: jsonl<br/>aggregate: count-by-key by item\"/]"))
        for edge in ["source --> stage0", "stage0 --> stage1", "stage0 --> stage2", "stage1 --> sink", "stage2 --> sink"] {
            #expect(mermaid.contains(edge), "\(edge)")
        }
    }
}

@Suite struct TopologyGraphChainTests {
    static let topology = Topology(
        name: "chained", source: SourceSpec(kind: .stdin),
        stages: [
            StageSpec(name: "a", handler: .builtin(name: "upper", options: [:])),
            StageSpec(name: "b", handler: .builtin(name: "lower", options: [:]), from: ["a"]),
            StageSpec(name: "c", handler: .builtin(name: "identity", options: [:]), from: ["b"], chain: false),
        ],
        sink: SinkSpec(kind: .stdout))

    @Test func dotBoxesEachChainAndSaysWhyTheRestDidNotChain() {
        let dot = TopologyGraph.render(Self.topology, format: .dot)
        #expect(dot.contains("  subgraph cluster_chain0 {\n    label=\"chain: a > b (one worker slot)\";\n    style=dashed;\n    stage0; stage1;\n  }"))
        #expect(dot.contains("stage0 -> stage1 [style=bold, label=\"chained\"];"))
        #expect(dot.contains("stage1 -> stage2;"))
        #expect(dot.contains("// not chained: b -> c: stage c has chain: false"))
    }

    @Test func mermaidDrawsEachChainAsASubgraph() {
        let mermaid = TopologyGraph.render(Self.topology, format: .mermaid)
        #expect(mermaid.contains("  subgraph chain0[\"chain: a #gt; b (one worker slot)\"]\n    stage0\n    stage1\n  end"))
        #expect(mermaid.contains("stage0 ==>|chained| stage1"))
        #expect(mermaid.contains("stage1 --> stage2"))
        #expect(mermaid.contains("%% not chained: b -> c: stage c has chain: false"))
    }
}
