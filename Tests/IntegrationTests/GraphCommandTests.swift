// Runs `lancompute graph` on an example.

import Foundation
import Testing

@Suite(.timeLimit(.minutes(1))) struct GraphCommandTests {
    @Test func printsDotByDefault() throws {
        let result = try ProcessHarness.run(["graph", "Topologies/wordcount.yaml"])
        #expect(result.status == 0)
        #expect(result.standardOutput.hasPrefix("digraph \"wordcount\" {"))
        #expect(result.standardOutput.contains("source -> stage0;"))
    }

    @Test func printsMermaidOnRequest() throws {
        let result = try ProcessHarness.run(["graph", "--format", "mermaid", "Topologies/placement.yaml"])
        #expect(result.status == 0)
        #expect(result.standardOutput.hasPrefix("flowchart LR\n"))
        #expect(result.standardOutput.contains("stage0 --> stage2"))
    }

    @Test func invalidFileFails() throws {
        let result = try ProcessHarness.run(["graph", "Tests/LANComputeTests/Fixtures/invalid/cycle.yaml"])
        #expect(result.status == 1)
        #expect(result.standardOutput.contains("error LC1023"))
    }
}

@Suite(.timeLimit(.minutes(1))) struct GraphChainCommandTests {
    @Test func graphShowsTheChainsOfAFile() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try """
            version: 1
            name: chained
            source: {stdin: true}
            stages:
              - {name: parse, builtin: identity}
              - {name: shout, builtin: upper}
              - {name: words, builtin: split-words, chain: false}
            sink: {stdout: true}
            """.write(toFile: harness.path("t.yaml"), atomically: true, encoding: .utf8)
        let dot = try ProcessHarness.run(["graph", harness.path("t.yaml")])
        #expect(dot.status == 0)
        #expect(dot.standardOutput.contains("label=\"chain: parse > shout (one worker slot)\";"))
        #expect(dot.standardOutput.contains("stage0 -> stage1 [style=bold, label=\"chained\"];"))
        #expect(dot.standardOutput.contains("// not chained: shout -> words: stage words has chain: false"))
        let mermaid = try ProcessHarness.run(["graph", "--format", "mermaid", harness.path("t.yaml")])
        #expect(mermaid.status == 0)
        #expect(mermaid.standardOutput.contains("subgraph chain0[\"chain: parse #gt; shout (one worker slot)\"]"))
    }

    @Test func aBadChainValueIsALocatedError() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try """
            version: 1
            name: chained
            source: {stdin: true}
            stages:
              - {name: parse, builtin: identity, chain: sometimes}
            sink: {stdout: true}
            """.write(toFile: harness.path("t.yaml"), atomically: true, encoding: .utf8)
        let result = try ProcessHarness.run(["validate", harness.path("t.yaml")])
        #expect(result.status != 0)
        let output = result.standardOutput + result.standardError
        #expect(output.contains("t.yaml:5:"), "\(output)")
        #expect(output.contains("error LC1005") && output.contains("chain"), "\(output)")
    }
}
