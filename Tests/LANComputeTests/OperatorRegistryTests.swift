// Checks the operator registry: its typed option parsing, and that Docs/stages.md documents exactly its builtins.

import Foundation
import Testing
@testable import LANCompute

@Suite struct OperatorRegistryTests {
    struct DocumentedBuiltin {
        var name: String
        var options: String
        var cost: String
        var summary: String
    }

    /// The rows of the builtins table in Docs/stages.md: `| `name` | options | cost | summary |`.
    static func documentedBuiltins() throws -> [DocumentedBuiltin] {
        let text = try TopologyDocumentationTests.read("stages.md")
        let section = try #require(text.components(separatedBy: "\n## Builtins\n").dropFirst().first)
            .components(separatedBy: "\n## ").first ?? ""
        return section.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("| `") else { return nil }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 4 else { return nil }
            return DocumentedBuiltin(
                name: cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`")), options: cells[1], cost: cells[2],
                summary: cells[3])
        }
    }

    @Test func stagesDocumentsEveryBuiltinWithItsSummary() throws {
        let documented = try Self.documentedBuiltins()
        #expect(documented.map(\.name) == OperatorRegistry.names, "Docs/stages.md lists other builtins than the registry")
        for row in documented {
            guard let spec = OperatorRegistry.spec(named: row.name) else {
                Issue.record("Docs/stages.md documents '\(row.name)', which the registry does not have")
                continue
            }
            #expect(row.summary == spec.summary, "\(row.name): the summary differs from the registry's")
            #expect(row.cost == (spec.cost == .fast ? "fast" : "blocking"), "\(row.name): the cost differs")
            for option in spec.options {
                #expect(row.options.contains("`\(option.name)`"), "\(row.name): option \(option.name) is not documented")
                #expect(row.options.contains("required") == spec.options.contains(where: \.isRequired))
            }
            if spec.options.isEmpty { #expect(row.options == "none") }
        }
    }

    @Test func summariesAreOneLine() {
        for spec in OperatorRegistry.all {
            #expect(!spec.summary.isEmpty && !spec.summary.contains("\n") && !spec.summary.contains("|"), "\(spec.name)")
        }
        #expect(Set(OperatorRegistry.names).count == OperatorRegistry.all.count)
    }

    @Test func optionKindsParseTheirValues() throws {
        #expect(try OperatorOptionKind.duration.parse("1.5s").get().durationValue == .milliseconds(1_500))
        #expect(throws: OperatorValueProblem.self) { try OperatorOptionKind.duration.parse("10").get() }
        #expect(try OperatorOptionKind.boolean.parse("TRUE").get().booleanValue == true)
        #expect(try OperatorOptionKind.boolean.parse("false").get().booleanValue == false)
        #expect(throws: OperatorValueProblem.self) { try OperatorOptionKind.boolean.parse("yes").get() }
        #expect(try OperatorOptionKind.text.parse("").get().textValue == "")
        #expect(throws: OperatorValueProblem.self) { try OperatorOptionKind.nonEmptyText.parse("").get() }
        #expect(throws: OperatorValueProblem.self) { try OperatorOptionKind.regex.parse("(?<=a)b").get() }
        let regex = try #require(try OperatorOptionKind.regex.parse("a{,3}").get().regexValue)
        #expect("xaa".contains(regex))
    }

    @Test func validateReportsTheFirstProblemByKind() {
        let grep = OperatorRegistry.spec(named: "grep")!
        #expect(throws: OperatorOptionError.missingOption("pattern")) { try grep.validate([:]) }
        #expect(throws: OperatorOptionError.unknownOption("patern", accepted: ["invert", "pattern"])) {
            try grep.validate(["patern": "a"])
        }
        #expect(throws: OperatorOptionError.invalidValue(option: "invert", reason: "'maybe' is not true or false")) {
            try grep.validate(["pattern": "a", "invert": "maybe"])
        }
        #expect(throws: Never.self) { try grep.validate(["pattern": "a", "invert": "True"]) }
    }
}

extension OperatorOptionValue {
    var textValue: String? { if case .text(let value) = self { value } else { nil } }
    var durationValue: Duration? { if case .duration(let value) = self { value } else { nil } }
    var booleanValue: Bool? { if case .boolean(let value) = self { value } else { nil } }
    var regexValue: Regex<AnyRegexOutput>? { if case .regex(let value) = self { value } else { nil } }
}
