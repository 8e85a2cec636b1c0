// Runs the built lancompute binary as a user would.

import Foundation
import Testing

@Suite struct BinaryTests {
    @Test func binaryIsBuilt() throws {
        #expect(FileManager.default.fileExists(atPath: CLI.path), "build lancompute before the tests: \(CLI.path)")
    }
}

/// Where the built `lancompute` binary is: next to the test bundle.
enum CLI {
    static var path: String {
        let bundle = Bundle.main.bundleURL
        let candidates = [
            bundle.appendingPathComponent("lancompute").path,
            bundle.deletingLastPathComponent().appendingPathComponent("lancompute").path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }
}
