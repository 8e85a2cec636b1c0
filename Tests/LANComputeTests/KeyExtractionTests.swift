// Checks how keys are taken from items for group-by and keyed aggregates.

import Foundation
import Testing
@testable import LANCompute

@Suite struct KeyExtractionTests {
    private func key(_ extractor: KeyExtractor, _ item: String) -> String? {
        extractor.key(of: item.bytes)?.text
    }

    @Test func wholeItem() {
        #expect(key(.item, "a b") == "a b")
        #expect(key(.item, "") == "")
    }

    @Test func jsonFields() {
        let item = #"{"user": {"id": 7, "name": "ada"}, "city": "Zürich", "tags": ["a"]}"#
        #expect(key(.jsonField("city"), item) == "Zürich")
        #expect(key(.jsonField("user.name"), item) == "ada")
        #expect(key(.jsonField("user.id"), item) == "7")
        #expect(key(.jsonField("tags"), item) == #"["a"]"#)
        #expect(key(.jsonField("missing"), item) == nil)
        #expect(key(.jsonField("user.name.first"), item) == nil)
        #expect(key(.jsonField("city"), "not json") == nil)
        #expect(key(.jsonField("city"), "[1]") == nil)
    }

    @Test func regexGroups() {
        let extractor = KeyExtractor.regex(pattern: #"user=(\w+) id=(\d+)"#, group: 1)
        #expect(key(extractor, "GET / user=ada id=42") == "ada")
        #expect(key(.regex(pattern: #"user=(\w+) id=(\d+)"#, group: 2), "user=ada id=42") == "42")
        #expect(key(.regex(pattern: #"id=\d+"#, group: 0), "x id=9 y") == "id=9")
        #expect(key(extractor, "no user here") == nil)
        #expect(key(.regex(pattern: #"user=(\w+)"#, group: 3), "user=ada") == nil)
        #expect(key(.regex(pattern: "(a)|(b)", group: 2), "a") == nil)
        #expect(key(.regex(pattern: "(unclosed", group: 0), "(unclosed") == nil)
    }

    @Test func samePatternWithDifferentGroupsOnManyThreads() {
        let mismatches = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for index in 0..<200 {
                let item = "user=u\(thread) id=\(index)".bytes
                let user = KeyExtractor.regex(pattern: #"user=(\w+) id=(\d+)"#, group: 1).key(of: item)
                let id = KeyExtractor.regex(pattern: #"user=(\w+) id=(\d+)"#, group: 2).key(of: item)
                if user?.text != "u\(thread)" || id?.text != "\(index)" { mismatches.add() }
            }
        }
        #expect(mismatches.value == 0)
    }

    @Test func whitespaceFields() {
        #expect(key(.field(0), "alpha beta\tgamma") == "alpha")
        #expect(key(.field(2), "  alpha   beta\tgamma  ") == "gamma")
        #expect(key(.field(3), "alpha beta gamma") == nil)
        #expect(key(.field(0), "   ") == nil)
        #expect(key(.field(-1), "a") == nil)
    }

    @Test func compiledExtractorMatchesTheConvenience() throws {
        let compiled = try CompiledKeyExtractor(.regex(pattern: #"(\d+)"#, group: 1))
        for item in ["a1", "b22", "none", "333c"] {
            #expect(compiled.key(of: item.bytes) == KeyExtractor.regex(pattern: #"(\d+)"#, group: 1).key(of: item.bytes))
        }
        #expect(throws: StageFailure.self) { try CompiledKeyExtractor(.regex(pattern: "(", group: 0)) }
    }
}
