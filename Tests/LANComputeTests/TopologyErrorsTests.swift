// Checks how topology problems are formatted and ordered.

import Testing
@testable import LANCompute

@Suite struct TopologyErrorsTests {
    static func diagnostic(_ line: Int, _ column: Int, _ code: TopologyErrorCode, file: String = "a.yaml") -> TopologyDiagnostic {
        TopologyDiagnostic(location: SourceLocation(file: file, line: line, column: column), code: code, message: "m")
    }

    @Test func descriptionIsTheCompilerFormat() {
        let diagnostic = TopologyDiagnostic(
            location: SourceLocation(file: "dir/t.yaml", line: 12, column: 7), code: "LC1004", message: "unknown key 'x'")
        #expect(diagnostic.description == "dir/t.yaml:12:7: error LC1004: unknown key 'x'")
    }

    @Test func problemsAreInFileOrder() {
        let errors = TopologyErrors([
            Self.diagnostic(9, 1, .cycle), Self.diagnostic(2, 5, .unknownKey), Self.diagnostic(2, 3, .wrongType),
            Self.diagnostic(1, 1, .missingKey, file: "b.yaml"),
        ])
        #expect(errors.diagnostics.map(\.location.line) == [2, 2, 9, 1])
        #expect(errors.diagnostics.map(\.location.column) == [3, 5, 1, 1])
        #expect(errors.description.split(separator: "\n").count == 4)
    }

    @Test func codesAreUniqueAndInTheTopologyRange() {
        let codes = TopologyErrorCode.allCases.map(\.rawValue)
        #expect(Set(codes).count == codes.count)
        for code in codes {
            #expect(code.hasPrefix("LC1") && code.count == 6 && Int(code.dropFirst(2)) != nil, "\(code)")
        }
    }
}
