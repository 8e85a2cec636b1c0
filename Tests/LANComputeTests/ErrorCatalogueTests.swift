// Every runtime and wire error code the sources can print has its row in Docs/errors.md.

import Foundation
import Testing

@Suite struct ErrorCatalogueTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyCodeInTheSourcesIsCatalogued() throws {
        let catalogue = try String(contentsOf: Self.root.appendingPathComponent("Docs/errors.md"), encoding: .utf8)
        let pattern = try Regex("LC[23][0-9]{3}")
        var codes = Set<String>()
        let sources = Self.root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: pattern) { codes.insert(String(text[match.range])) }
        }
        #expect(codes.count >= 20, "the scan found too few codes to be looking in the right place")
        for code in codes.sorted() {
            #expect(catalogue.contains("| \(code) |"), "\(code) is printed by the sources but missing from Docs/errors.md")
        }
    }
}
