// Checks JSONText: escaping, numbers and key order, against JSONSerialization as the reader.

import Foundation
import Testing
@testable import LANCompute

@Suite struct JSONTextTests {
    @Test func stringsAreEscapedSoAnyParserReadsThemBack() throws {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{07} unicode é 🚀"
        let text = JSONText.object([("s", .string(awkward))]).serialized
        #expect(text.contains(#"\u0007"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["s"] as? String == awkward)
    }

    @Test func numbersAreWrittenPlainly() {
        let text = JSONText.array([
            .int(-3), .unsigned(UInt64.max), .number(2), .number(0.25), .number(.infinity), .number(.nan), .bool(true), .null,
        ]).serialized
        #expect(text == "[-3,18446744073709551615,2,0.25,null,null,true,null]")
    }

    @Test func objectsKeepInsertionOrderAndDictionariesAreSorted() {
        #expect(JSONText.object([("z", .int(1)), ("a", .int(2))]).serialized == #"{"z":1,"a":2}"#)
        #expect(JSONText.sortedObject(["b": "2", "a": "1"]).serialized == #"{"a":"1","b":"2"}"#)
        #expect(JSONText.sortedObject([String: Int]()).serialized == "{}")
    }
}
