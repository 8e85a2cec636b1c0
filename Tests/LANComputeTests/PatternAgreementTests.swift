// Checks that `validate` and the run time agree on every regular expression: grep patterns and key patterns.

import Foundation
import Testing
@testable import LANCompute

/// One engine (Swift `Regex`) for the loader and the runtime: each row goes through both,
/// and both must give the row's verdict.
@Suite(.timeLimit(.minutes(1))) struct PatternAgreementTests {
    struct GrepCase: CustomTestStringConvertible, Sendable {
        var pattern: String
        var accepted: Bool
        /// When accepted: a text the pattern must keep.
        var matching: String = ""
        var testDescription: String { "grep \(pattern.debugDescription)" }
    }

    static let grepCases: [GrepCase] = [
        GrepCase(pattern: "(?<=ab)c", accepted: false),  // lookbehind: Swift Regex has none
        GrepCase(pattern: "(?<!a)b", accepted: false),
        GrepCase(pattern: "(?=ab)a", accepted: true, matching: "xab"),  // lookahead
        GrepCase(pattern: "(?!x)b", accepted: true, matching: "ab"),
        GrepCase(pattern: "a{,3}b", accepted: true, matching: "aaab"),  // NSRegularExpression rejected it
        GrepCase(pattern: #"(?<word>\w+) (\d)"#, accepted: true, matching: "ada 3"),
        GrepCase(pattern: "(?i)^err(or)?", accepted: true, matching: "ERROR: disk"),
        GrepCase(pattern: #"\p{L}+"#, accepted: true, matching: "café"),
        GrepCase(pattern: "a++b", accepted: true, matching: "aab"),
        GrepCase(pattern: "([a-z", accepted: false),
        GrepCase(pattern: "a)(b", accepted: false),
        GrepCase(pattern: "*a", accepted: false),
        GrepCase(pattern: "x{2,1}", accepted: false),
        GrepCase(pattern: "(?<n>a)(?<n>b)", accepted: false),
        GrepCase(pattern: #"\"#, accepted: false),
    ]

    struct KeyCase: CustomTestStringConvertible, Sendable {
        var pattern: String
        var group: Int
        var accepted: Bool
        /// When accepted: an item and the key it must give.
        var item: String = ""
        var key: String = ""
        var testDescription: String { "key \(pattern.debugDescription) group \(group)" }
    }

    static let keyCases: [KeyCase] = [
        KeyCase(pattern: "(?<=a)(b)", group: 1, accepted: false),  // validated, then wrote an empty aggregate
        KeyCase(pattern: "(?=ab)(a)", group: 1, accepted: true, item: "xab", key: "a"),
        KeyCase(pattern: "a{,3}", group: 0, accepted: true, item: "aaaa", key: "aaa"),
        KeyCase(pattern: #"(?<user>\w+)=(\d+)"#, group: 2, accepted: true, item: "ada=36", key: "36"),
        KeyCase(pattern: #"(?<user>\w+)=(\d+)"#, group: 1, accepted: true, item: "ada=36", key: "ada"),
        KeyCase(pattern: #"(?<user>\w+)=(\d+)"#, group: 3, accepted: false),  // no such group
        KeyCase(pattern: "(a)|(b)", group: 2, accepted: true, item: "b", key: "b"),
        KeyCase(pattern: #"\Q(a)"#, group: 1, accepted: false),  // quoted: no group at all
        KeyCase(pattern: #"\Q(a)"#, group: 0, accepted: true, item: "x(a)", key: "(a)"),
        KeyCase(pattern: "(?x) (a) # a comment", group: 1, accepted: true, item: "ba", key: "a"),
        KeyCase(pattern: "(", group: 0, accepted: false),
        KeyCase(pattern: "[z-a]", group: 0, accepted: false),
    ]

    /// YAML single-quoted, so backslashes stay as they are.
    static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    static func diagnostics(_ yaml: String) -> [TopologyDiagnostic] {
        TopologyLoaderTests.diagnostics(yaml)
    }

    // MARK: grep

    @Test(arguments: grepCases)
    func grepPatternValidatesExactlyWhenItRuns(_ row: GrepCase) throws {
        let yaml = """
            version: 1
            name: t
            source: {stdin: true}
            stages:
              - name: keep
                builtin: grep
                options:
                  pattern: \(Self.quoted(row.pattern))
            sink: {stdout: true}
            """
        let found = Self.diagnostics(yaml)
        let stage = StageSpec(name: "keep", handler: .builtin(name: "grep", options: ["pattern": row.pattern]))
        let availability = StageHandlers.availability(of: stage, swiftFunctions: [:], workingDirectory: NSTemporaryDirectory())

        #expect(found.isEmpty == row.accepted, "validate: \(found)")
        #expect(availability.isAvailable == row.accepted, "run: \(availability)")
        if row.accepted {
            let handler = try StageHandlers.make(for: stage, swiftFunctions: [:], workingDirectory: NSTemporaryDirectory())
            #expect(try handler.process(row.matching.bytes) == [row.matching.bytes])
        } else {
            // Located at the pattern, with the code validate has always used for option values.
            #expect(found.map(\.code) == [TopologyErrorCode.invalidOption.rawValue])
            #expect(found.first?.location.line == 8)
            #expect(found.first?.location.column == 16)
            guard case .unavailable(let reason) = availability else { return }
            // The same reason, from the same parse, on both sides.
            let validateReason = found.first?.message.components(separatedBy: "option 'pattern': ").last ?? "?"
            #expect(reason.hasSuffix(validateReason))
        }
    }

    // MARK: keys

    @Test(arguments: keyCases)
    func keyPatternValidatesExactlyWhenItRuns(_ row: KeyCase) throws {
        let key = "{regex: \(Self.quoted(row.pattern)), group: \(row.group)}"
        let groupBy = Self.diagnostics("""
            version: 1
            name: t
            source: {stdin: true}
            stages:
              - name: a
                builtin: identity
                group-by: \(key)
            sink: {stdout: true}
            """)
        let sinkKey = Self.diagnostics("""
            version: 1
            name: t
            source: {stdin: true}
            stages:
              - name: a
                builtin: identity
            sink: {stdout: true, aggregate: count-by-key, key: \(key)}
            """)
        let extractor = KeyExtractor.regex(pattern: row.pattern, group: row.group)
        let compiled = Result { () throws(StageFailure) in try CompiledKeyExtractor(extractor) }
        let aggregator = Result { () throws(StageFailure) in
            try SinkAggregator(SinkSpec(kind: .stdout, aggregate: .countByKey, key: extractor))
        }

        #expect(groupBy.isEmpty == row.accepted, "validate group-by: \(groupBy)")
        #expect(sinkKey.isEmpty == row.accepted, "validate sink key: \(sinkKey)")
        #expect(((try? compiled.get()) != nil) == row.accepted, "run: \(compiled)")
        #expect(((try? aggregator.get()) != nil) == row.accepted, "sink: \(aggregator)")
        if row.accepted {
            #expect(try compiled.get().key(of: row.item.bytes)?.text == row.key)
            #expect(extractor.key(of: row.item.bytes)?.text == row.key)
            var sink = try aggregator.get()
            sink.add(row.item.bytes)
            #expect(sink.unkeyed == 0)
        } else {
            #expect(groupBy.map(\.code) == [TopologyErrorCode.invalidRegex.rawValue])
            #expect(sinkKey.map(\.code) == [TopologyErrorCode.invalidRegex.rawValue])
        }
    }

    /// A topology built in code skips the loader: its sink must still refuse a key it cannot compile,
    /// instead of finishing with exit 0 and an empty aggregate file.
    @Test func runWithAnUncompilableSinkKeyFailsWithoutWritingTheSink() throws {
        let directory = try LocalClusterTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("counts.jsonl").path
        let topology = Topology(
            name: "lookbehind-key", source: SourceSpec(kind: .generate(count: 10, size: 8)),
            stages: [StageSpec(name: "same", handler: .builtin(name: "identity", options: [:]))],
            sink: SinkSpec(kind: .file(path: path), aggregate: .countByKey, key: .regex(pattern: "(?<=a)(b)", group: 1)))
        #expect {
            _ = try LocalClusterTests.run(topology, workers: 1)
        } throws: { error in
            "\(error)".contains("LC1055")
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
