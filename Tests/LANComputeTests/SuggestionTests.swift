// Checks the "did you mean" suggestions.

import Testing
@testable import LANCompute

@Suite struct SuggestionTests {
    @Test func suggestsCloseWords() {
        #expect(Suggestion.closest(to: "replica", among: Schema.stage) == "replicas")
        #expect(Suggestion.closest(to: "form", among: Schema.stage) == "from")
        #expect(Suggestion.closest(to: "sha265", among: OperatorRegistry.names) == "sha256")
        #expect(Suggestion.closest(to: "Name", among: Schema.root) == "name")
    }

    @Test func staysQuietWhenNothingIsClose() {
        #expect(Suggestion.closest(to: "colour", among: Schema.source) == nil)
        #expect(Suggestion.closest(to: "x", among: ["abc"]) == nil)
    }

    @Test func countsASwapAsOneEdit() {
        #expect(Suggestion.editDistance("form", "from") == 1)
        #expect(Suggestion.editDistance("", "abc") == 3)
        #expect(Suggestion.editDistance("kitten", "sitting") == 3)
    }
}
