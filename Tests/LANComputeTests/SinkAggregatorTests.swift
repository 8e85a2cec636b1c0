// Checks the sink's lines: streaming formats, counts, sums and collect, and JSON escaping.

import Foundation
import Testing
@testable import LANCompute

@Suite struct SinkAggregatorTests {
    private func aggregate(_ sink: SinkSpec, _ outputs: [String]) -> SinkAggregator {
        var aggregator = try! SinkAggregator(sink)
        for output in outputs { aggregator.add(output.bytes) }
        return aggregator
    }

    /// Lines as text, for the tests whose outputs are all UTF-8 (the byte tests compare bytes).
    private func text(_ line: [UInt8]) -> String { String(decoding: line, as: UTF8.self) }

    private func parsedObject(_ line: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }

    @Test func streamingLines() throws {
        #expect(try SinkAggregator(SinkSpec(kind: .stdout)).isStreaming)
        #expect(text(SinkAggregator.line(for: "plain text".bytes, format: .lines)) == "plain text")
        #expect(text(SinkAggregator.line(for: "plain text".bytes, format: .jsonl)) == #""plain text""#)
        #expect(text(SinkAggregator.line(for: #"{"b": 1, "a": [1, 2.50]}"#.bytes, format: .jsonl)) == #"{"b":1,"a":[1,2.50]}"#)
        #expect(text(SinkAggregator.line(for: "{\n  \"k\": \"a b\"\n}".bytes, format: .jsonl)) == #"{"k":"a b"}"#)
        #expect(text(SinkAggregator.line(for: "42".bytes, format: .jsonl)) == "42")
        #expect(text(SinkAggregator.line(for: "{broken".bytes, format: .jsonl)) == #""{broken""#)
        let aggregator = aggregate(SinkSpec(kind: .stdout, format: .jsonl), ["a", "\"b\""])
        #expect(aggregator.finalLines().map(text) == [#""a""#, #""b""#])
    }

    @Test func escapingGivesValidJSON() {
        let nasty = "quote\" backslash\\ newline\n tab\t bell\u{07} nul\u{00} é 😀"
        let line = text(SinkAggregator.line(for: nasty.bytes, format: .jsonl))
        #expect(line == #""quote\" backslash\\ newline\n tab\t bell\u0007 nul\u0000 é 😀""#)
        #expect(!line.contains("\n"))
        let parsed = try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])
        #expect(parsed as? String == nasty)
    }

    @Test func countByKeyOrdersByCountThenKey() {
        let words = "the cat and the hat and the bat".split(separator: " ").map(String.init)
        let aggregator = aggregate(
            SinkSpec(kind: .stdout, format: .jsonl, aggregate: .countByKey, key: .item, keyName: "word"), words)
        #expect(!aggregator.isStreaming)
        #expect(
            aggregator.finalLines().map(text) == [
                #"{"word":"the","count":3}"#, #"{"word":"and","count":2}"#, #"{"word":"bat","count":1}"#,
                #"{"word":"cat","count":1}"#, #"{"word":"hat","count":1}"#,
            ])
        let lines = aggregate(SinkSpec(kind: .stdout, format: .lines, aggregate: .countByKey), words)
        #expect(lines.finalLines().map(text).prefix(2) == ["the\t3", "and\t2"])
    }

    @Test func countByKeyEscapesKeysAndCountsUnkeyed() {
        let sink = SinkSpec(kind: .stdout, format: .jsonl, aggregate: .countByKey, key: .jsonField("k"), keyName: "na\"me")
        let aggregator = aggregate(sink, [#"{"k": "a\"b\nc"}"#, #"{"k": "a\"b\nc"}"#, #"{"other": 1}"#, "text"])
        #expect(aggregator.unkeyed == 2)
        #expect(aggregator.added == 4)
        let lines = aggregator.finalLines().map(text)
        #expect(lines == [#"{"na\"me":"a\"b\nc","count":2}"#])
        #expect(parsedObject(lines[0])?["na\"me"] as? String == "a\"b\nc")
    }

    @Test func sumByKey() {
        let sink = SinkSpec(kind: .stdout, format: .jsonl, aggregate: .sumByKey, key: .field(0), keyName: "host")
        let aggregator = aggregate(sink, ["web 1.5", "db 2", "web 2.5", "db 0.25", "web", "cache x", "lonely"])
        // "web" alone: its last field is the key itself, not a number.
        #expect(aggregator.valueless == 3)
        #expect(aggregator.finalLines().map(text) == [#"{"host":"web","sum":4}"#, #"{"host":"db","sum":2.25}"#])

        let json = SinkSpec(kind: .stdout, format: .lines, aggregate: .sumByKey, key: .jsonField("k"))
        let fromObjects = aggregate(
            json, [#"{"k": "a", "value": 3}"#, #"{"k": "a", "value": -1.5}"#, #"{"k": "b", "value": "10"}"#, #"{"k": "c"}"#])
        #expect(fromObjects.finalLines().map(text) == ["b\t10", "a\t1.5"])
        #expect(fromObjects.valueless == 1)
    }

    @Test func sumsPrintIntegersWithoutFraction() {
        #expect(SinkAggregator.format(4) == "4")
        #expect(SinkAggregator.format(-3) == "-3")
        #expect(SinkAggregator.format(0.1 + 0.2) == "0.30000000000000004")
        #expect(SinkAggregator.format(2.25) == "2.25")
        #expect(SinkAggregator.format(1e20) == "1e+20")
        #expect(SinkAggregator.format(.infinity) == "null")
    }

    @Test func collectGivesOneArrayInArrivalOrder() {
        let aggregator = aggregate(SinkSpec(kind: .stdout, format: .jsonl, aggregate: .collect), ["b", "a\"", "{\"j\":1}"])
        let lines = aggregator.finalLines().map(text)
        #expect(lines == [#"["b","a\"","{\"j\":1}"]"#])
        let parsed = try? JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String]
        #expect(parsed == ["b", "a\"", "{\"j\":1}"])
        #expect(aggregate(SinkSpec(kind: .stdout, aggregate: .collect), []).finalLines().map(text) == ["[]"])
    }

    // MARK: Bytes are bytes

    /// Latin-1 "café", a lone continuation byte, an overlong "/" and an encoded surrogate: none is UTF-8.
    static let notUTF8: [[UInt8]] = [[0x63, 0x61, 0x66, 0xE9], [0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80]]

    @Test func linesFormatWritesTheOutputsBytesUnchanged() {
        for output in Self.notUTF8 + [[0x61, 0x00, 0x62], [0x00], [], [0xFF, 0xFE, 0x00, 0x0A, 0x01]] {
            #expect(SinkAggregator.line(for: output, format: .lines) == output)
        }
        let aggregator = aggregateBytes(SinkSpec(kind: .stdout, format: .lines), Self.notUTF8)
        #expect(aggregator.finalLines() == Self.notUTF8)
    }

    @Test func jsonlCarriesBytesThatAreNotUTF8AsBase64() throws {
        for output in Self.notUTF8 {
            let line = SinkAggregator.line(for: output, format: .jsonl)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: String])
            #expect(Array(object.keys) == ["output_base64"])
            #expect(object["output_base64"].flatMap { Data(base64Encoded: $0) } == Data(output))
        }
        // UTF-8 with a NUL stays a string, escaped.
        #expect(text(SinkAggregator.line(for: [0x61, 0x00, 0xC3, 0xA9], format: .jsonl)) == #""a\u0000é""#)
    }

    @Test func collectCarriesBytesThatAreNotUTF8AsBase64() throws {
        let aggregator = aggregateBytes(SinkSpec(kind: .stdout, format: .jsonl, aggregate: .collect), [Array("ok".utf8), [0xE9]])
        let lines = aggregator.finalLines()
        #expect(lines.map(text) == [#"["ok",{"output_base64":"6Q=="}]"#])
    }

    @Test func countByKeyKeepsKeysThatDifferOnlyInInvalidBytesApart() throws {
        // As text both would read "caf\u{FFFD}"; as bytes they are different keys.
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9]
        let other: [UInt8] = [0x63, 0x61, 0x66, 0xE8]
        let composed = Array("caf\u{E9}".utf8)
        let decomposed = Array("cafe\u{301}".utf8)
        let outputs = [latin1, latin1, other, composed, decomposed, decomposed, decomposed]

        let lines = aggregateBytes(SinkSpec(kind: .stdout, format: .lines, aggregate: .countByKey), outputs).finalLines()
        #expect(lines == [decomposed + Array("\t3".utf8), latin1 + Array("\t2".utf8), composed + Array("\t1".utf8), other + Array("\t1".utf8)])

        let sink = SinkSpec(kind: .stdout, format: .jsonl, aggregate: .countByKey, key: .item, keyName: "word")
        let json = aggregateBytes(sink, outputs).finalLines()
        let objects = try json.map { try #require(try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]) }
        #expect(objects.count == 4)
        #expect(objects[0]["word"] as? String == "cafe\u{301}" && objects[0]["count"] as? Int == 3)
        #expect(objects[1]["word_base64"] as? String == Data(latin1).base64EncodedString() && objects[1]["count"] as? Int == 2)
        #expect(objects[1]["word"] == nil)
        #expect(objects[3]["word_base64"] as? String == Data(other).base64EncodedString())
    }

    @Test func sumByKeyKeepsKeysAsBytes() {
        let sink = SinkSpec(kind: .stdout, format: .lines, aggregate: .sumByKey, key: .field(0))
        let outputs: [[UInt8]] = [[0xE9, 0x20, 0x31], [0xE8, 0x20, 0x32], [0xE9, 0x20, 0x34]]
        #expect(aggregateBytes(sink, outputs).finalLines() == [[0xE9, 0x09, 0x35], [0xE8, 0x09, 0x32]])
    }

    private func aggregateBytes(_ sink: SinkSpec, _ outputs: [[UInt8]]) -> SinkAggregator {
        var aggregator = try! SinkAggregator(sink)
        for output in outputs { aggregator.add(output) }
        return aggregator
    }
}
