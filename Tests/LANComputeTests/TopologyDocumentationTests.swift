// Checks that the topology reference and the error catalogue agree with the code.

import Foundation
import Testing
@testable import LANCompute

@Suite struct TopologyDocumentationTests {
    static let docs = TopologyFixtures.packageRoot.appendingPathComponent("Docs")

    static func read(_ name: String) throws -> String {
        try String(contentsOf: docs.appendingPathComponent(name), encoding: .utf8)
    }

    /// The ```yaml blocks of a Markdown text that are whole topologies (they start with `version:` and have stages).
    static func topologyBlocks(in markdown: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```yaml" {
                current = []
            } else if current != nil, line == "```" {
                let block = current!.joined(separator: "\n")
                if block.hasPrefix("version:"), block.contains("\nstages:") { blocks.append(block) }
                current = nil
            } else if current != nil {
                current!.append(line)
            }
        }
        return blocks
    }

    @Test func everyWholeTopologyInTheReferenceIsValid() throws {
        let blocks = Self.topologyBlocks(in: try Self.read("topology.md"))
        #expect(blocks.count >= 2)
        for block in blocks {
            do {
                _ = try TopologyLoader.load(yaml: block, file: "topology.md", environment: [:])
            } catch {
                Issue.record("a documented topology is invalid:\n\(error)\n---\n\(block)")
            }
        }
    }

    @Test func everyCodeIsCatalogued() throws {
        let catalogue = try Self.read("errors.md")
        for code in TopologyErrorCode.allCases {
            #expect(catalogue.contains("| \(code.rawValue) |"), "\(code.rawValue) is missing from Docs/errors.md")
        }
    }

    @Test func everyKeyIsDocumented() throws {
        let reference = try Self.read("topology.md")
        let keys = Schema.root + Schema.source + Schema.generate + Schema.stage + Schema.exec + Schema.requirements
            + Schema.key + Schema.sink + Schema.broker + Schema.breaker
        for key in Set(keys) {
            #expect(reference.contains("`\(key)`"), "key \(key) is missing from Docs/topology.md")
        }
        for name in OperatorRegistry.names {
            #expect(reference.contains("| `\(name)` |"), "builtin \(name) is missing from Docs/topology.md")
        }
    }

    @Test func editorSchemaHasTheLoadersKeys() throws {
        let data = try Data(contentsOf: Self.docs.appendingPathComponent("topology.schema.json"))
        let schema = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let definitions = try #require(schema["definitions"] as? [String: Any])
        func keys(_ object: Any?) -> Set<String> {
            Set(((object as? [String: Any])?["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
        }
        #expect(keys(schema) == Set(Schema.root))
        #expect(keys(definitions["source"]) == Set(Schema.source))
        #expect(keys(definitions["stage"]) == Set(Schema.stage + ["<<"]))
        #expect(keys(definitions["exec"]) == Set(Schema.exec))
        #expect(keys(definitions["requirements"]) == Set(Schema.requirements))
        #expect(keys(definitions["sink"]) == Set(Schema.sink))
        #expect(keys(definitions["broker"]) == Set(Schema.broker))
        let stageKeys = try #require((definitions["stage"] as? [String: Any])?["properties"] as? [String: Any])
        let builtins = try #require((stageKeys["builtin"] as? [String: Any])?["enum"] as? [String])
        #expect(builtins == OperatorRegistry.names)
    }
}
