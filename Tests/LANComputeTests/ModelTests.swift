// Checks the topology model's graph helpers.

import Testing
@testable import LANCompute

@Suite struct ModelTests {
    @Test func terminalAndDownstreamStages() {
        let topology = Topology(
            name: "t", source: SourceSpec(kind: .stdin),
            stages: [
                StageSpec(name: "a", handler: .builtin(name: "identity", options: [:])),
                StageSpec(name: "b", handler: .builtin(name: "upper", options: [:]), from: ["a"]),
                StageSpec(name: "c", handler: .external, from: ["a"]),
            ],
            sink: SinkSpec(kind: .stdout))
        #expect(topology.downstream(of: nil).map(\.name) == ["a"])
        #expect(topology.downstream(of: "a").map(\.name) == ["b", "c"])
        #expect(topology.terminalStages.map(\.name) == ["b", "c"])
    }
}
