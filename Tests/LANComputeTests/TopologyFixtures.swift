// Finds the example topologies and the invalid-topology corpus on disk, next to the sources.

import Foundation

enum TopologyFixtures {
    /// The package root, found from this file's path so no SwiftPM resources are needed.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let examplesDirectory = packageRoot.appendingPathComponent("Topologies")
    static let invalidDirectory = packageRoot.appendingPathComponent("Tests/LANComputeTests/Fixtures/invalid")

    static func yamlFiles(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }

    static var examples: [String] { yamlFiles(in: examplesDirectory) }
    static var invalidCases: [String] { yamlFiles(in: invalidDirectory) }

    /// What an invalid file's first line promises: `# expect: LC1004 7:5`.
    struct Expectation: Equatable {
        var code: String
        var line: Int
        var column: Int
    }

    static func expectation(in text: String) -> Expectation? {
        guard let first = text.split(separator: "\n", omittingEmptySubsequences: false).first,
            first.hasPrefix("# expect: ")
        else { return nil }
        let parts = first.dropFirst("# expect: ".count).split(separator: " ")
        guard parts.count == 2 else { return nil }
        let position = parts[1].split(separator: ":").compactMap { Int($0) }
        guard position.count == 2 else { return nil }
        return Expectation(code: String(parts[0]), line: position[0], column: position[1])
    }
}
