// Durations as stage options spell them: "250ms", "2s", "1.5s".

import Foundation

/// Parses a duration literal: a non-negative decimal number followed by a unit, one of
/// `ns`, `us`, `ms`, `s`, `m`, `h`. Returns nil for anything else.
func parseDurationLiteral(_ text: String) -> Duration? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard let unitStart = trimmed.firstIndex(where: { $0.isLetter }) else { return nil }
    let number = trimmed[..<unitStart]
    let unit = trimmed[unitStart...]
    guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
        number.first != ".", number.last != ".",
        let value = Double(number), value.isFinite, value >= 0
    else { return nil }
    let nanosecondsPerUnit: Double
    switch unit {
    case "ns": nanosecondsPerUnit = 1
    case "us", "µs": nanosecondsPerUnit = 1e3
    case "ms": nanosecondsPerUnit = 1e6
    case "s": nanosecondsPerUnit = 1e9
    case "m": nanosecondsPerUnit = 60e9
    case "h": nanosecondsPerUnit = 3600e9
    default: return nil
    }
    let nanoseconds = (value * nanosecondsPerUnit).rounded()
    guard nanoseconds < Double(Int64.max) else { return nil }
    return .nanoseconds(Int64(nanoseconds))
}
