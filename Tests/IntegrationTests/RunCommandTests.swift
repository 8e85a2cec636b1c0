// `lancompute run` as a user runs it: wordcount against a reference count, a DAG, poison items, bad input.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(3))) struct RunCommandTests {
    /// The repository root, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs the CLI to completion; returns its exit status and everything it printed.
    static func run(_ arguments: [String], in harness: ProcessHarness) throws -> (status: Int32, output: String) {
        let child = try harness.lancompute("run-\(UUID().uuidString.prefix(6))", arguments)
        let status = child.wait(timeout: .seconds(120))
        return (status ?? -1, child.standardOutput + child.standardError)
    }

    static func jsonLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test func wordcountMatchesAReferenceCount() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))
        let output = directory.appendingPathComponent("counts.jsonl").path
        let topology = Self.root.appendingPathComponent("Topologies/wordcount.yaml").path
        let result = try Self.run(["run", topology, "--output", output, "--events", "none", "--workers", "2", "--json"], in: harness)
        #expect(result.status == 0, "\(result.output)")

        // The reference: maximal runs of Unicode letters or digits, lowercased.
        let text = try String(contentsOf: Self.root.appendingPathComponent("Topologies/data/wordcount.txt"), encoding: .utf8)
        var expected: [String: Int] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            for word in line.split(whereSeparator: { !($0.isLetter || $0.isNumber) }) { expected[word.lowercased(), default: 0] += 1 }
        }
        var counted: [String: Int] = [:]
        for record in try Self.jsonLines(output) {
            let word = try #require(record["word"] as? String)
            #expect(counted[word] == nil, "\(word) appears twice")
            counted[word] = record["count"] as? Int
        }
        #expect(counted == expected)
        // The summary agrees: nothing dead-lettered or left unfinished.
        let summary = try Summary(json: result.output)
        #expect(summary.itemsIn > 0 && summary.itemsOut > 0)
        #expect(summary.deadLettered == 0)
        #expect(summary.unfinished == 0)
    }

    @Test func threeStageDAGFeedsEachBranchACopy() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))
        try (1...500).map { "line \($0)" }.joined(separator: "\n").write(to: directory.appendingPathComponent("in.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: dag
            source:
              file: in.txt
            stages:
              - name: clean
                builtin: lower
              - name: shout
                builtin: upper
                from: clean
              - name: hash
                builtin: sha256
                from: clean
            sink:
              file: out.txt
              format: lines
            """.write(to: directory.appendingPathComponent("dag.yaml"), atomically: true, encoding: .utf8)
        let result = try Self.run(["run", harness.path("dag.yaml"), "--events", "none", "--json"], in: harness)
        #expect(result.status == 0, "\(result.output)")
        let lines = Set(try String(contentsOfFile: directory.appendingPathComponent("out.txt").path, encoding: .utf8).split(separator: "\n").map(String.init))
        #expect(lines.count == 1000)
        #expect(lines.contains("LINE 7"))
        // sha256("line 7")
        #expect(lines.contains { $0.count == 64 && $0.allSatisfy(\.isHexDigit) })
        #expect(lines.filter { $0.hasPrefix("LINE ") }.count == 500)
    }

    /// 600 distinct lines: ordinary text, Latin-1 (not UTF-8), NUL bytes inside and alone, and empty.
    static func awkwardLines() -> [[UInt8]] {
        (0..<600).map { index in
            let number = Array(String(index).utf8)
            switch index % 6 {
            case 0: return Array("plain line ".utf8) + number
            case 1: return [0x63, 0x61, 0x66, 0xE9, 0x20, 0xB0] + number  // "café °" in Latin-1
            case 2: return Array("nul".utf8) + [0x00] + number + [0x00, 0x00, 0x41]
            case 3: return [0x00] + number
            case 4: return [0xFF, 0xFE, 0x80] + number + [0xC0]  // stray bytes
            default: return index == 5 ? [] : Array("é ✓ ".utf8) + number
            }
        }
    }

    /// Runs `identity` over `lines` with a sink in `format`; returns the sink file's bytes.
    static func identityRun(_ lines: [[UInt8]], format: String, in harness: ProcessHarness) throws -> [UInt8] {
        let input: [UInt8] = lines.flatMap { $0 + [0x0A] }
        #expect(FileManager.default.createFile(atPath: harness.path("in.txt"), contents: Data(input)))
        try """
            version: 1
            name: bytes
            source:
              file: in.txt
            stages:
              - name: same
                builtin: identity
            sink:
              file: out.txt
              format: \(format)
            """.write(toFile: harness.path("bytes.yaml"), atomically: true, encoding: .utf8)
        let result = try Self.run(["run", harness.path("bytes.yaml"), "--events", "none", "--workers", "2"], in: harness)
        #expect(result.status == 0, "\(result.output)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: harness.path("out.txt"))))
    }

    /// The sink's lines: what is between newline bytes (outputs may arrive in any order).
    static func byteLines(_ bytes: [UInt8]) -> [[UInt8]] {
        guard bytes.last == 0x0A else { return [bytes] }
        return bytes.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
    }

    /// The same lines, each as often, in any order (compared without printing 600 byte arrays).
    static func sameLines(_ left: [[UInt8]], _ right: [[UInt8]]) -> Bool {
        left.sorted { $0.lexicographicallyPrecedes($1) } == right.sorted { $0.lexicographicallyPrecedes($1) }
    }

    @Test func linesSinkWritesEveryOutputByteForByte() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let input = Self.awkwardLines()
        let sink = try Self.identityRun(input, format: "lines", in: harness)
        #expect(sink.count == input.reduce(0) { $0 + $1.count + 1 })
        let written = Self.byteLines(sink)
        #expect(written.count == input.count)
        let missing = Set(input).subtracting(written)
        #expect(missing.isEmpty, "\(missing.count) lines changed or lost, e.g. \(missing.prefix(3).map { $0 })")
        #expect(Self.sameLines(written, input), "the sink differs from the input")
    }

    @Test func jsonlSinkCarriesBytesThatAreNotUTF8AsBase64() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let input = Self.awkwardLines()
        let sink = try Self.identityRun(input, format: "jsonl", in: harness)
        var decoded: [[UInt8]] = []
        for line in Self.byteLines(sink) {
            let value = try #require(try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed]))
            if let text = value as? String {
                decoded.append(Array(text.utf8))
            } else {
                let object = try #require(value as? [String: String], "\(value)")
                decoded.append(Array(try #require(object["output_base64"].flatMap { Data(base64Encoded: $0) })))
            }
        }
        #expect(Self.sameLines(decoded, input), "\(Set(input).subtracting(decoded).count) outputs changed or lost")
    }

    @Test func poisonItemsAreDeadLetteredWhileTheRestComplete() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))
        let items = (1...300).map { $0 % 30 == 0 ? "poison \($0)" : "fine \($0)" }
        try items.joined(separator: "\n").write(to: directory.appendingPathComponent("in.txt"), atomically: true, encoding: .utf8)
        try """
            import sys
            for line in sys.stdin:
                if line.startswith("poison"):
                    sys.stderr.write("cannot digest " + line)
                    sys.exit(3)
                sys.stdout.write(line.upper())
                sys.stdout.flush()
            """.write(to: directory.appendingPathComponent("picky.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: poison
            source:
              file: in.txt
            stages:
              - name: picky
                exec:
                  command: [python3, picky.py]
                max-attempts: 3
            sink:
              file: out.txt
              format: lines
            """.write(to: directory.appendingPathComponent("poison.yaml"), atomically: true, encoding: .utf8)
        let result = try Self.run(["run", harness.path("poison.yaml"), "--events", "none"], in: harness)
        #expect(result.status == 1, "a run with dead-lettered items exits 1: \(result.output)")
        let out = try String(contentsOfFile: directory.appendingPathComponent("out.txt").path, encoding: .utf8).split(separator: "\n")
        #expect(out.count == 290)
        let deadLetters = try Self.jsonLines(directory.appendingPathComponent("out.dead-letter.jsonl").path)
        #expect(deadLetters.count == 10)
        #expect(Set(deadLetters.compactMap { $0["item"] as? String }) == Set(items.filter { $0.hasPrefix("poison") }))
        #expect(deadLetters.allSatisfy { $0["attempts"] as? Int == 3 && $0["stage"] as? String == "picky" })
        #expect(deadLetters.allSatisfy { ($0["stderr"] as? String)?.contains("cannot digest") == true })
    }

    @Test func interruptedRunAccountsForEveryItemItAccepted() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let lines = (1...3000).map { "item \($0)" }
        try lines.joined(separator: "\n").write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: slow
            source:
              file: in.txt
            stages:
              - name: nap
                builtin: sleep
                options: {duration: 5ms}
            sink:
              file: out.txt
              format: lines
            """.write(toFile: harness.path("slow.yaml"), atomically: true, encoding: .utf8)
        let run = try harness.lancompute("run", ["run", harness.path("slow.yaml"), "--events", "none", "--grace", "1", "--json"])
        let start = ContinuousClock.now
        while RunCommandTests.lines(harness.path("out.txt")).count < 50 && ContinuousClock.now - start < .seconds(30) {
            Thread.sleep(forTimeInterval: 0.02)
        }
        run.signal(SIGINT)
        #expect(run.wait(timeout: .seconds(30)) == 1, "\(harness.transcripts)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(run.standardOutput.utf8)) as? [String: Any])
        #expect(summary["interrupted"] as? Bool == true)
        #expect((summary["deadLetterPath"] as? String)?.hasSuffix("/out.dead-letter.jsonl") == true)
        #expect(!run.standardOutput.contains(#"\/"#), "the summary escapes slashes: \(run.standardOutput)")
        let read = try #require(summary["itemsIn"] as? Int)
        let sink = RunCommandTests.lines(harness.path("out.txt"))
        let deadLetters = try Self.jsonLines(harness.path("out.dead-letter.jsonl")).compactMap { $0["item"] as? String }
        #expect(sink.count < read, "the run finished before it was interrupted; the test proves nothing")
        #expect(Set(sink).isDisjoint(with: deadLetters))
        #expect(sink.count + deadLetters.count == read)
        #expect(Set(sink + deadLetters) == Set(lines.prefix(read)))
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test(arguments: [
        ["worker", "--broker", "garbage:port"],
        ["feed", "tcp://host", "in.txt"],
        ["feed", "udp://x:1", "in.txt"],
        ["events", "nowhere:xx"],
        ["top", "tcp://*:5556"],
    ])
    func badEndpointsAreOneLineUsageErrors(arguments: [String]) throws {
        let result = try ProcessHarness.run(arguments)
        // A usage error (exit 64) names the bad value on the first line, before the usage text.
        #expect(result.status == 64, "\(result.standardError)")
        let first = result.standardError.split(separator: "\n").first.map(String.init) ?? ""
        // The bad value is the last endpoint-like argument.
        let value = arguments.last { $0.contains("garbage") || $0.contains("://") || $0.hasPrefix("nowhere") } ?? ""
        #expect(first.hasPrefix("Error: ") && first.contains(value), "\(result.standardError)")
    }

    @Test func invalidTopologyFailsWithLocatedErrors() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = URL(fileURLWithPath: harness.path(""))
        try "version: 1\nname: x\nsource: {stdin: true}\nstages:\n  - name: a\n    builtin: nope\nsink: {stdout: true}\n"
            .write(to: directory.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        let result = try Self.run(["run", harness.path("bad.yaml")], in: harness)
        #expect(result.status == 1)
        #expect(result.output.contains("bad.yaml:6:"))
        #expect(result.output.contains("error LC1"))
        #expect(!result.output.contains("Fatal error"))
    }

    @Test func pushSinkDeliversEveryOutputToAConsumer() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try """
            import sys, zmq
            pull = zmq.Context().socket(zmq.PULL)
            pull.bind(sys.argv[1])
            pull.RCVTIMEO = 30000
            with open(sys.argv[2], "w") as out:
                for _ in range(int(sys.argv[3])):
                    out.write(pull.recv().decode() + "\\n")
            """.write(toFile: harness.path("consumer.py"), atomically: true, encoding: .utf8)
        try """
            version: 1
            name: pushed
            source:
              generate: {count: 500, size: 12}
            stages:
              - name: shout
                builtin: upper
            sink:
              push: \(harness.ipc("sink"))
              format: lines
            """.write(toFile: harness.path("pushed.yaml"), atomically: true, encoding: .utf8)
        let consumer = try harness.python("consumer", [harness.path("consumer.py"), harness.ipc("sink"), harness.path("got.txt"), "500"])
        let result = try Self.run(["run", harness.path("pushed.yaml"), "--events", "none"], in: harness)
        #expect(result.status == 0, "\(result.output)")
        #expect(consumer.wait(timeout: .seconds(30)) == 0, "\(harness.transcripts)")
        let got = RunCommandTests.lines(harness.path("got.txt"))
        #expect(got.count == 500)
        #expect(Set(got).count == 500)
        #expect(got.allSatisfy { $0.hasPrefix("ITEM-") })
    }

    @Test func stageThatCannotRunHereIsAClearErrorNotAWait() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try "version: 1\nname: m\nsource: {generate: {count: 3, size: 4}}\nstages:\n  - name: transcode\n    exec:\n      command: [no-such-tool-xyz]\nsink: {stdout: true}\n"
            .write(toFile: harness.path("missing.yaml"), atomically: true, encoding: .utf8)
        let result = try Self.run(["run", harness.path("missing.yaml")], in: harness)
        #expect(result.status == 1)
        #expect(result.output.contains("LC2008"), "\(result.output)")
        #expect(result.output.contains("no-such-tool-xyz"))
    }

    @Test func missingSourceFileIsAClearError() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let topology = Self.root.appendingPathComponent("Topologies/checksum.yaml").path
        let result = try Self.run(["run", topology, "--input", harness.path("no-such-file.txt"), "--output", harness.path("x.txt"), "--events", "none"], in: harness)
        #expect(result.status != 0)
        #expect(result.output.contains("LC2010"), "\(result.output)")
        #expect(result.output.contains("no-such-file.txt"))
    }

    /// A source that fails part way (here a binary file cut inside its last item) fails the run, and
    /// every item read before the cut is processed first (Docs/errors.md, LC2012): 600 items are more
    /// than two of the reader's batches, so the last, partial batch and the failure arrive together.
    @Test func aSourceThatFailsPartWayStillProcessesTheItemsBeforeIt() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        var bytes: [UInt8] = []
        func lengthPrefix(_ count: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: count >> (8 * (3 - $0))) } }
        let items = (0..<600).map { Array("item-\($0)".utf8) }
        for item in items { bytes += lengthPrefix(item.count) + item }
        bytes += lengthPrefix(10) + Array("cut".utf8)
        let input = harness.path("cut.bin")
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        let topology = harness.path("cut.yaml")
        try """
        version: 1
        name: cut-source
        source:
          file: \(input)
          format: binary
        stages:
          - name: pass
            builtin: identity
        sink:
          file: \(harness.path("out.txt"))
        """.write(toFile: topology, atomically: true, encoding: .utf8)
        let result = try Self.run(["run", topology, "--events", "none", "--workers", "2"], in: harness)
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("LC2012"), "\(result.output)")
        #expect(result.output.contains("the 600 items read before it reached the sink"), "\(result.output)")
        let written = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        let missing = Set(items.map { String(decoding: $0, as: UTF8.self) }).subtracting(written)
        #expect(written.count == 600 && Set(written).count == 600, "\(written.count) lines, \(Set(written).count) distinct")
        #expect(missing.isEmpty, "\(missing.count) of the 600 items are missing from the sink")
    }

    /// `validate` and `run` check a pattern with one engine, so they give one verdict: a lookbehind
    /// (which Swift `Regex` lacks) fails both with the same code, `a{,3}` passes both.
    @Test(arguments: [
        (#"{name: keep, builtin: grep, options: {pattern: '(?<=ab)c'}}"#, "{file: out.txt}", "LC1034"),
        ("{name: same, builtin: identity}", "{file: out.txt, aggregate: count-by-key, key: {regex: '(?<=a)(b)', group: 1}}", "LC1055"),
        (#"{name: keep, builtin: grep, options: {pattern: 'a{,3}b'}}"#, "{file: out.txt}", ""),
    ])
    func validateAndRunAgreeOnPatterns(stage: String, sink: String, code: String) throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try "aab\nxyz\nab\n".write(toFile: harness.path("in.txt"), atomically: true, encoding: .utf8)
        try "version: 1\nname: p\nsource: {file: in.txt}\nstages:\n  - \(stage)\nsink: \(sink)\n"
            .write(toFile: harness.path("p.yaml"), atomically: true, encoding: .utf8)
        let validate = try ProcessHarness.run(["validate", harness.path("p.yaml")])
        let run = try Self.run(["run", harness.path("p.yaml"), "--events", "none", "--workers", "1"], in: harness)
        let output = harness.path("out.txt")
        if code.isEmpty {
            #expect(validate.status == 0, "\(validate.standardOutput)")
            #expect(run.status == 0, "\(run.output)")
            #expect(Set(Self.lines(output)) == ["aab", "ab"])
        } else {
            #expect(validate.status == 1)
            #expect(validate.standardOutput.contains("error \(code)"), "\(validate.standardOutput)")
            #expect(run.status == 1)
            #expect(run.output.contains("error \(code)"), "\(run.output)")
            #expect(!FileManager.default.fileExists(atPath: output))
        }
    }
}
