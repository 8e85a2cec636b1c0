// Checks the parsing and printing of duration literals.

import Testing
@testable import LANCompute

@Suite struct DurationLiteralTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("2s", .seconds(2)), ("1.5s", .milliseconds(1_500)),
        ("1m", .seconds(60)), ("1h", .seconds(3_600)), ("0ms", .zero), ("0.5ms", .microseconds(500)),
    ])
    func parses(text: String, duration: Duration) {
        #expect(DurationLiteral.parse(text) == duration)
    }

    @Test(arguments: ["", "5", "ms", "2 weeks", "1d", "-1s", "1..5s", "s2"])
    func rejects(text: String) {
        #expect(DurationLiteral.parse(text) == nil)
    }

    @Test func formatsInTheLargestExactUnit() {
        #expect(DurationLiteral.format(.milliseconds(250)) == "250ms")
        #expect(DurationLiteral.format(.milliseconds(1_500)) == "1500ms")
        #expect(DurationLiteral.format(.seconds(2)) == "2s")
        #expect(DurationLiteral.format(.seconds(120)) == "2m")
        #expect(DurationLiteral.format(.seconds(7_200)) == "2h")
        #expect(DurationLiteral.format(.zero) == "0ms")
        #expect(DurationLiteral.parse(DurationLiteral.format(.microseconds(500))) == .microseconds(500))
    }
}
