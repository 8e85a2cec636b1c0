// Runs `lancompute validate` on the examples and on invalid files.

import Foundation
import Testing

@Suite(.timeLimit(.minutes(1))) struct ValidateCommandTests {
    static var examples: [String] {
        let directory = ProcessHarness.packageRoot.appendingPathComponent("Topologies").path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { "Topologies/\($0)" }
    }

    @Test func examplesAreValid() throws {
        let result = try ProcessHarness.run(["validate"] + Self.examples)
        #expect(result.status == 0, "\(result.standardOutput)")
        #expect(result.standardOutput == Self.examples.map { "\($0): ok\n" }.joined())
    }

    @Test func invalidFilePrintsLocatedErrorsAndFails() throws {
        let invalid = "Tests/LANComputeTests/Fixtures/invalid/unknown-key-stage.yaml"
        let result = try ProcessHarness.run(["validate", "Topologies/wordcount.yaml", invalid])
        #expect(result.status == 1)
        #expect(
            result.standardOutput
                == "Topologies/wordcount.yaml: ok\n\(invalid):7:5: error LC1004: unknown key 'replica' in stage 'a'; did you mean 'replicas'?\n")
    }

    @Test func missingFileIsAnError() throws {
        let result = try ProcessHarness.run(["validate", "Topologies/no-such-file.yaml"])
        #expect(result.status == 1)
        #expect(result.standardOutput == "Topologies/no-such-file.yaml:1:1: error LC1001: cannot read file: no such file\n")
    }
}
