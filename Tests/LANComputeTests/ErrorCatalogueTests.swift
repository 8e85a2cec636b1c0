// Docs/errors.md and the runtime and protocol error enums name the same codes, with the same remedies.

import Foundation
import Testing
import LANCompute

@Suite struct ErrorCatalogueTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The catalogue's LC2xxx and LC3xxx rows: code to the "How to fix" cell.
    static func catalogueRows() throws -> [String: String] {
        let catalogue = try String(contentsOf: root.appendingPathComponent("Docs/errors.md"), encoding: .utf8)
        var rows: [String: String] = [:]
        for line in catalogue.split(separator: "\n") where line.hasPrefix("| LC2") || line.hasPrefix("| LC3") {
            // | Code | Meaning | Example | How to fix |
            let cells = line.dropFirst(2).dropLast(2).components(separatedBy: " | ")
            #expect(cells.count == 4, "a catalogue row without four cells: \(line)")
            #expect(rows[cells[0]] == nil, "\(cells[0]) has two rows")
            rows[cells[0]] = cells.last
        }
        return rows
    }

    static var enumRemedies: [String: String] {
        var remedies: [String: String] = [:]
        for code in RuntimeErrorCode.allCases { remedies[code.code] = code.remedy }
        for code in ProtocolErrorCode.allCases { remedies[code.code] = code.remedy }
        return remedies
    }

    @Test func everyCaseHasItsRowWithTheSameRemedy() throws {
        let rows = try Self.catalogueRows()
        for (code, remedy) in Self.enumRemedies.sorted(by: { $0.key < $1.key }) {
            #expect(rows[code] != nil, "\(code) is in the enum but missing from Docs/errors.md")
            if let documented = rows[code] { #expect(documented == remedy, "\(code): the catalogue and the enum disagree on what to do") }
        }
    }

    @Test func everyDocumentedCodeIsACase() throws {
        let rows = try Self.catalogueRows()
        #expect(rows.count >= 20, "the parse found too few rows to be reading the right table")
        for code in rows.keys.sorted() {
            #expect(Self.enumRemedies[code] != nil, "\(code) is documented but no enum case has it")
        }
    }

    @Test func codesStayInTheirRanges() {
        #expect(RuntimeErrorCode.allCases.allSatisfy { (2000..<3000).contains($0.rawValue) })
        #expect(ProtocolErrorCode.allCases.allSatisfy { (3000..<4000).contains($0.rawValue) })
        #expect(RuntimeErrorCode.allCases.allSatisfy { !$0.title.isEmpty && !$0.title.hasSuffix(".") })
        #expect(ProtocolErrorCode.allCases.allSatisfy { !$0.title.isEmpty && !$0.title.hasSuffix(".") })
    }

    @Test func anErrorPrintsItsCodeThenItsMessage() {
        let error = RuntimeError(.dispatchBind, "cannot bind tcp://127.0.0.1:5555")
        #expect(error.description == "LC2001: cannot bind tcp://127.0.0.1:5555")
        #expect(ProtocolError(.unknownService, "unknown service nope").description == "LC3004: unknown service nope")
    }

    @Test func textWithALeadingCodeKeepsTheCode() {
        let parsed = RuntimeError("LC2013: cannot open sink file /x: Permission denied")
        #expect(parsed == RuntimeError(.sinkCreate, "cannot open sink file /x: Permission denied"))
        #expect(RuntimeError("something broke") == RuntimeError(.unclassified, "something broke"))
        #expect(RuntimeError("LC9999: no such code").code == .unclassified)
        #expect(RuntimeError("LC9999: no such code").message == "LC9999: no such code")
        #expect(RuntimeErrorCode(code: "LC2001") == .dispatchBind)
        #expect(RuntimeErrorCode(code: "LC20011") == nil)
    }
}
