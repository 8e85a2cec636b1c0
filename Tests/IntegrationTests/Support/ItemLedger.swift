// Reads a finished run's sink and dead-letter file, and checks that every item ended in exactly one of them.

import Foundation
import Testing

/// Where the items of one run ended: the sink's lines (bytes, in file order) and the dead-letter records.
struct ItemLedger {
    struct DeadLetter {
        var id: String
        var item: String
        var reason: String
        var attempts: Int
    }

    var sink: [String]
    var deadLetters: [DeadLetter]

    /// `sinkPath` may be missing (nothing reached it); so may `deadLetterPath` (nothing was dead-lettered).
    init(sinkPath: String, deadLetterPath: String) throws {
        let sinkData = FileManager.default.contents(atPath: sinkPath) ?? Data()
        // Split on the byte, not as text, so that a line glued to another or mangled shows up as wrong.
        sink = sinkData.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if sink.last == "" { sink.removeLast() }
        let letters = (try? String(contentsOfFile: deadLetterPath, encoding: .utf8)) ?? ""
        deadLetters = try letters.split(separator: "\n").map { line in
            guard let fields = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let id = fields["id"] as? String, let item = fields["item"] as? String,
                  let reason = fields["reason"] as? String, let attempts = fields["attempts"] as? Int
            else { throw HarnessError("not a dead-letter record: \(line)") }
            return DeadLetter(id: id, item: item, reason: reason, attempts: attempts)
        }
    }

    var deadItems: [String] { deadLetters.map(\.item) }

    /// Items that are in both places, or twice in one: each is a broken promise.
    var duplicates: [String] {
        var seen: [String: Int] = [:]
        for item in sink + deadItems { seen[item, default: 0] += 1 }
        return seen.filter { $0.value > 1 }.keys.sorted()
    }

    /// Records, with `sourceLocation` naming the caller, every way the ledger differs from "each of
    /// `expected` exactly once, in the sink or in the dead letters, and nothing else".
    func expectEachExactlyOnce(_ expected: [String], context: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
        let wanted = Set(expected)
        let found = sink + deadItems
        let stray = Set(found).subtracting(wanted).sorted()
        let missing = wanted.subtracting(found).sorted()
        let inBoth = Set(sink).intersection(deadItems).sorted()
        #expect(stray.isEmpty, "\(stray.count) lines that are no item of this run: \(stray.prefix(10))\n\(context())", sourceLocation: sourceLocation)
        #expect(missing.isEmpty, "\(missing.count) items in neither place: \(missing.prefix(10))\n\(context())", sourceLocation: sourceLocation)
        #expect(inBoth.isEmpty, "\(inBoth.count) items both in the sink and dead-lettered: \(inBoth.prefix(10))\n\(context())", sourceLocation: sourceLocation)
        #expect(duplicates.isEmpty, "\(duplicates.count) items more than once: \(duplicates.prefix(10))\n\(context())", sourceLocation: sourceLocation)
        #expect(found.count == expected.count, "\(found.count) entries for \(expected.count) items\n\(context())", sourceLocation: sourceLocation)
    }
}

/// The lines `PID ITEM` a test's exec program appends to its log, one per item it ran: which
/// worker (the pid of the exec child's parent) ran which item.
enum ProcessedLog {
    static func read(_ path: String) -> [(pid: String, item: String)] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
    }
}
