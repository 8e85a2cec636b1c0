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

    private func parsedObject(_ line: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }

    @Test func streamingLines() throws {
        #expect(try SinkAggregator(SinkSpec(kind: .stdout)).isStreaming)
        #expect(SinkAggregator.line(for: "plain text".bytes, format: .lines) == "plain text")
        #expect(SinkAggregator.line(for: "plain text".bytes, format: .jsonl) == #""plain text""#)
        #expect(SinkAggregator.line(for: #"{"b": 1, "a": [1, 2.50]}"#.bytes, format: .jsonl) == #"{"b":1,"a":[1,2.50]}"#)
        #expect(SinkAggregator.line(for: "{\n  \"k\": \"a b\"\n}".bytes, format: .jsonl) == #"{"k":"a b"}"#)
        #expect(SinkAggregator.line(for: "42".bytes, format: .jsonl) == "42")
        #expect(SinkAggregator.line(for: "{broken".bytes, format: .jsonl) == #""{broken""#)
        let aggregator = aggregate(SinkSpec(kind: .stdout, format: .jsonl), ["a", "\"b\""])
        #expect(aggregator.finalLines() == [#""a""#, #""b""#])
    }

    @Test func escapingGivesValidJSON() {
        let nasty = "quote\" backslash\\ newline\n tab\t bell\u{07} nul\u{00} é 😀"
        let line = SinkAggregator.line(for: nasty.bytes, format: .jsonl)
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
            aggregator.finalLines() == [
                #"{"word":"the","count":3}"#, #"{"word":"and","count":2}"#, #"{"word":"bat","count":1}"#,
                #"{"word":"cat","count":1}"#, #"{"word":"hat","count":1}"#,
            ])
        let lines = aggregate(SinkSpec(kind: .stdout, format: .lines, aggregate: .countByKey), words)
        #expect(lines.finalLines().prefix(2) == ["the\t3", "and\t2"])
    }

    @Test func countByKeyEscapesKeysAndCountsUnkeyed() {
        let sink = SinkSpec(kind: .stdout, format: .jsonl, aggregate: .countByKey, key: .jsonField("k"), keyName: "na\"me")
        let aggregator = aggregate(sink, [#"{"k": "a\"b\nc"}"#, #"{"k": "a\"b\nc"}"#, #"{"other": 1}"#, "text"])
        #expect(aggregator.unkeyed == 2)
        #expect(aggregator.added == 4)
        let lines = aggregator.finalLines()
        #expect(lines == [#"{"na\"me":"a\"b\nc","count":2}"#])
        #expect(parsedObject(lines[0])?["na\"me"] as? String == "a\"b\nc")
    }

    @Test func sumByKey() {
        let sink = SinkSpec(kind: .stdout, format: .jsonl, aggregate: .sumByKey, key: .field(0), keyName: "host")
        let aggregator = aggregate(sink, ["web 1.5", "db 2", "web 2.5", "db 0.25", "web", "cache x", "lonely"])
        // "web" alone: its last field is the key itself, not a number.
        #expect(aggregator.valueless == 3)
        #expect(aggregator.finalLines() == [#"{"host":"web","sum":4}"#, #"{"host":"db","sum":2.25}"#])

        let json = SinkSpec(kind: .stdout, format: .lines, aggregate: .sumByKey, key: .jsonField("k"))
        let fromObjects = aggregate(
            json, [#"{"k": "a", "value": 3}"#, #"{"k": "a", "value": -1.5}"#, #"{"k": "b", "value": "10"}"#, #"{"k": "c"}"#])
        #expect(fromObjects.finalLines() == ["b\t10", "a\t1.5"])
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
        let lines = aggregator.finalLines()
        #expect(lines == [#"["b","a\"","{\"j\":1}"]"#])
        let parsed = try? JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String]
        #expect(parsed == ["b", "a\"", "{\"j\":1}"])
        #expect(aggregate(SinkSpec(kind: .stdout, aggregate: .collect), []).finalLines() == ["[]"])
    }
}
