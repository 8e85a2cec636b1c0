// The typed literals of topology files: sizes, durations and ZeroMQ endpoints.

/// Parses and prints byte sizes such as `4GiB`, `512KB` or `1024`.
public enum ByteSize {
    private static let units: [(suffix: String, factor: Int)] = [
        ("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("TIB", 1 << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("B", 1),
    ]

    /// The number of bytes `text` means, or nil. Units are case-insensitive; KiB = 1024, KB = 1000.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else { return nil }
        let upper = trimmed.uppercased()
        var number = Substring(trimmed)
        var factor = 1
        for unit in units where upper.hasSuffix(unit.suffix) {
            number = trimmed.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        let digits = number.trimmingSpaces
        guard !digits.isEmpty else { return nil }
        if let whole = Int(digits), whole >= 0 {
            let (bytes, overflow) = whole.multipliedReportingOverflow(by: factor)
            return overflow ? nil : bytes
        }
        // Fractions are allowed with a unit (1.5GiB) when they come out as whole bytes.
        guard factor > 1, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(digits), value >= 0
        else { return nil }
        let bytes = value * Double(factor)
        guard bytes < Double(Int.max), bytes == bytes.rounded() else { return nil }
        return Int(bytes)
    }

    /// The shortest exact spelling of `bytes`: `4GiB`, `1500B` becomes `1500`.
    public static func format(_ bytes: Int) -> String {
        for (suffix, factor) in [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes != 0 && bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return String(bytes)
    }
}

/// Parses and prints durations such as `250ms`, `2s`, `1.5s`, `1m`, `1h`.
public enum DurationLiteral {
    private static let units: [(suffix: String, milliseconds: Double)] = [
        ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000),
    ]

    /// The duration `text` means, or nil. A unit is required: a bare `5` is ambiguous.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces
        // Longest suffix first, so that "ms" is not read as "m" + "s".
        for unit in units.sorted(by: { $0.suffix.count > $1.suffix.count }) where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count).trimmingSpaces
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                let value = Double(number)
            else { return nil }
            let microseconds = (value * unit.milliseconds * 1_000).rounded()
            guard microseconds < Double(Int64.max / 1_000) else { return nil }
            return .microseconds(Int64(microseconds))
        }
        return nil
    }

    /// The shortest exact spelling of `duration`, in the largest unit that divides it.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        if microseconds % 1_000 != 0 {
            let milliseconds = Double(microseconds) / 1_000
            return "\(milliseconds)ms"
        }
        let milliseconds = microseconds / 1_000
        if milliseconds != 0 {
            if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
            if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
            if milliseconds % 1_000 == 0 { return "\(milliseconds / 1_000)s" }
        }
        return "\(milliseconds)ms"
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
