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
