// Checks every builtin operator of the operator registry and the validation of its options.

import Foundation
import Testing
@testable import LANCompute

@Suite struct BuiltinTests {
    private func handler(_ name: String, _ options: [String: String] = [:]) throws -> any StageHandler {
        try StageHandlers.make(
            for: StageSpec(name: "s", handler: .builtin(name: name, options: options)), swiftFunctions: [:],
            workingDirectory: NSTemporaryDirectory())
    }

    private func run(_ name: String, _ item: String) throws -> [String] {
        try run(name, [:], item)
    }

    private func run(_ name: String, _ options: [String: String], _ item: String) throws -> [String] {
        let handler = try handler(name, options)
        defer { handler.close() }
        return try handler.process(item.bytes).map(\.text)
    }

    private func makeFailure(_ name: String, _ options: [String: String] = [:]) -> StageFailure? {
        do {
            _ = try handler(name, options)
            return nil
        } catch {
            return error as? StageFailure
        }
    }

    @Test func everyCatalogueEntryCanBeMade() throws {
        let required = ["json-get": ["field": "a"], "grep": ["pattern": "a"], "sleep": ["duration": "1ms"]]
        for name in OperatorRegistry.names {
            _ = try handler(name, required[name] ?? [:])
        }
    }

    @Test func identityPassesBytesThrough() throws {
        let handler = try handler("identity")
        let item: [UInt8] = [0, 255, 10, 13, 0x61]
        #expect(try handler.process(item) == [item])
    }

    @Test func upperAndLowerAreUnicodeAware() throws {
        #expect(try run("upper", "straße café") == ["STRASSE CAFÉ"])
        #expect(try run("lower", "ÀÉÎ Ωmega") == ["àéî ωmega"])
    }

    @Test func splitWordsKeepsLetterAndDigitRunsLowercased() throws {
        #expect(try run("split-words", "Hello, World! It's 2024...") == ["hello", "world", "it", "s", "2024"])
        #expect(try run("split-words", "Ünïcödé naïve—café ٣٤") == ["ünïcödé", "naïve", "café", "٣٤"])
        #expect(try run("split-words", "  ... --- ") == [])
        #expect(try run("split-words", "") == [])
        // A combining accent stays inside its word.
        #expect(try run("split-words", "cafe\u{301} bar") == ["cafe\u{301}", "bar"])
    }

    @Test func sha256GivesLowercaseHex() throws {
        #expect(try run("sha256", "abc") == ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"])
    }

    @Test func jsonGetFollowsDottedPaths() throws {
        let item = #"{"user": {"name": "Ada \"L\"", "age": 36, "tags": ["x", "y"], "ok": true, "none": null}, "n": 1.5}"#
        #expect(try run("json-get", ["field": "user.name"], item) == [#"Ada "L""#])
        #expect(try run("json-get", ["field": "user.age"], item) == ["36"])
        #expect(try run("json-get", ["field": "user.tags"], item) == [#"["x","y"]"#])
        #expect(try run("json-get", ["field": "user.tags.1"], item) == ["y"])
        #expect(try run("json-get", ["field": "user.ok"], item) == ["true"])
        #expect(try run("json-get", ["field": "user.none"], item) == ["null"])
        #expect(try run("json-get", ["field": "n"], item) == ["1.5"])
        #expect(try run("json-get", ["field": "user"], item).first?.hasPrefix(#"{"age":36"#) == true)
    }

    @Test func jsonGetDropsItemsWithoutTheField() throws {
        #expect(try run("json-get", ["field": "missing"], #"{"a": 1}"#) == [])
        #expect(try run("json-get", ["field": "a.b"], #"{"a": 1}"#) == [])
        #expect(try run("json-get", ["field": "a"], "not json") == [])
        #expect(try run("json-get", ["field": "a"], "[1, 2]") == [])
        #expect(try run("json-get", ["field": "a"], "\"a string\"") == [])
    }

    @Test func grepKeepsMatchesOrTheRest() throws {
        let grep = try handler("grep", ["pattern": "^err(or)?\\b"])
        #expect(try grep.process("error: disk".bytes) == ["error: disk".bytes])
        #expect(try grep.process("warning".bytes) == [])
        let inverted = try handler("grep", ["pattern": "^#", "invert": "true"])
        #expect(try inverted.process("# comment".bytes) == [])
        #expect(try inverted.process("code".bytes) == ["code".bytes])
        let spelledTrue = try handler("grep", ["pattern": "^#", "invert": "True"])
        #expect(try spelledTrue.process("# comment".bytes) == [])
    }

    @Test func sleepWaitsThenPassesTheItemOn() throws {
        let sleep = try handler("sleep", ["duration": "50ms"])
        let start = ContinuousClock.now
        #expect(try sleep.process("x".bytes) == ["x".bytes])
        #expect(ContinuousClock.now - start >= .milliseconds(45))
    }

    @Test func failThrowsItsMessage() throws {
        let plain = try handler("fail")
        #expect(throws: StageFailure("failed by the fail builtin")) { try plain.process("x".bytes) }
        let custom = try handler("fail", ["message": "nope"])
        #expect(throws: StageFailure("nope")) { try custom.process("x".bytes) }
    }

    @Test func badOptionsAreRejectedWithClearMessages() {
        #expect(makeFailure("json-get")?.message.contains("needs option 'field'") == true)
        #expect(makeFailure("grep")?.message.contains("needs option 'pattern'") == true)
        #expect(makeFailure("grep", ["pattern": "(unclosed"])?.message.contains("option 'pattern': '(unclosed' is not a valid regular expression") == true)
        #expect(makeFailure("grep", ["pattern": "a", "invert": "yes"])?.message.contains("option 'invert': 'yes' is not true or false") == true)
        #expect(makeFailure("sleep", ["duration": "soon"])?.message.contains("250ms") == true)
        #expect(makeFailure("sleep", ["duration": "10"]) != nil)
        #expect(makeFailure("upper", ["mode": "x"])?.message.contains("has no option 'mode'") == true)
        #expect(makeFailure("nope")?.message.contains("unknown builtin 'nope'") == true)
    }

    @Test func onlySleepIsBlockingAndNonBuiltinsCountAsBlocking() {
        for spec in OperatorRegistry.all {
            #expect(spec.cost == (spec.name == "sleep" ? .blocking : .fast), "\(spec.name)")
            let stage = StageSpec(name: "s", handler: .builtin(name: spec.name, options: [:]))
            #expect(StageHandlers.cost(of: stage) == spec.cost)
        }
        #expect(StageHandlers.cost(of: StageSpec(name: "s", handler: .external)) == .blocking)
        #expect(StageHandlers.cost(of: .exec("s", ["cat"], mode: .stream)) == .blocking)
    }

    @Test func handlersSeeTheItemsMetadata() throws {
        let item = StageItem(payload: "x".bytes, id: 7, attempt: 2, key: "k".bytes, priority: 3, deadline: 99)
        let header = ItemHeader(id: 7, attempt: 2, priority: 3, deadline: 99, key: "k".bytes)
        #expect(StageItem(RequestBatch.Item(header, "x".bytes)) == item)
        #expect(StageItem(RequestBatch.Item(ItemHeader(id: 1, attempt: 1), [])).deadline == nil)
        #expect(try handler("identity").process(item) == ["x".bytes])
    }
}
