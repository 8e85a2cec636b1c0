// Checks ${VAR} and ${VAR:-default} substitution.

import Testing
@testable import LANCompute

@Suite struct SubstitutionTests {
    static let environment = ["HOST": "head", "EMPTY": "", "PORT": "5555"]

    @Test(arguments: [
        ("plain", "plain"), ("${HOST}", "head"), ("tcp://${HOST}:${PORT}", "tcp://head:5555"),
        ("${MISSING:-fallback}", "fallback"), ("${EMPTY:-fallback}", "fallback"), ("${EMPTY}", ""),
        ("${MISSING:-}", ""), ("$${HOST}", "${HOST}"), ("cost: $5", "cost: $5"), ("a$", "a$"),
        ("${MISSING:-${x}", "${x"),
    ])
    func substitutes(text: String, expected: String) {
        #expect(Substitution.apply(to: text, environment: Self.environment) == .success(expected))
    }

    @Test func unsetVariableIsLocated() {
        let result = Substitution.apply(to: "café ${NOPE}", environment: [:])
        guard case let .failure(problem) = result else {
            Issue.record("substituted an unset variable")
            return
        }
        #expect(problem.code == .unsetVariable)
        #expect(problem.offset == 5)
    }

    @Test(arguments: ["${", "x ${HOST", "${}", "${1A}", "${A-B}"])
    func malformedReferencesAreRejected(text: String) {
        guard case let .failure(problem) = Substitution.apply(to: text, environment: Self.environment) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(problem.code == .malformedVariable)
    }

    @Test(arguments: ["${HOST}", "$${HOST}", "$$${", "a $ b ${", "$"])
    func escapeIsUndoneBySubstitution(text: String) {
        #expect(Substitution.apply(to: Substitution.escape(text), environment: Self.environment) == .success(text))
    }
}
