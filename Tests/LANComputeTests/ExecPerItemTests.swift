// Checks the exec per-item mode: stdin and "{}" item files, exit failures, JSON arrays, timeouts.

import Foundation
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct ExecPerItemTests {
    private func makeHandler(
        _ command: [String], output: ExecSpec.Output = .line, timeout: Duration? = nil,
        environment: [String: String] = [:]
    ) throws -> any StageHandler {
        try StageHandlers.make(
            for: .exec(
                "per-item", command, mode: .perItem, output: output, timeout: timeout, environment: environment),
            swiftFunctions: [:], workingDirectory: NSTemporaryDirectory())
    }

    private func failure(_ body: () throws -> Void) -> StageFailure? {
        do {
            try body()
            return nil
        } catch {
            return error as? StageFailure
        }
    }

    @Test func itemGoesToStdinAndStdoutComesBack() throws {
        let script = "import sys; sys.stdout.write(sys.stdin.read()[::-1] + '\\n')"
        do {
            let handler = try makeHandler(["python3", "-c", script])
            defer { handler.close() }
            #expect(try handler.process("abc".bytes) == ["cba".bytes])
            // Only one trailing newline is removed; the rest of the output is kept.
            #expect(try handler.process("\nx\n".bytes) == ["\nx\n".bytes])
        }
    }

    @Test func largeItemsDoNotDeadlock() throws {
        let item = [UInt8]((0..<(1 << 20)).map { UInt8(ascii: "a") + UInt8($0 % 26) })
        do {
            let handler = try makeHandler(["cat"])
            defer { handler.close() }
            #expect(try handler.process(item) == [item])
        }
    }

    @Test func braceArgumentIsATempFileRemovedAfterwards() throws {
        let script = """
            import sys
            data = open(sys.argv[1]).read()
            rest = sys.stdin.read()
            sys.stdout.write(sys.argv[1] + "|" + data.upper() + "|" + str(len(rest)))
            """
        do {
            let handler = try makeHandler(["python3", "-c", script, "{}"])
            defer { handler.close() }
            let output = try handler.process("hello file".bytes)
            let parts = output.first?.text.split(separator: "|").map(String.init) ?? []
            #expect(parts.count == 3)
            #expect(parts.dropFirst().first == "HELLO FILE")
            #expect(parts.last == "0")
            if let path = parts.first {
                #expect(!FileManager.default.fileExists(atPath: path))
            }
        }
    }

    @Test func braceInsideAnArgumentIsReplacedToo() throws {
        let script = "import sys; print(open(sys.argv[1].split('=', 1)[1]).read().upper())"
        do {
            let handler = try makeHandler(["python3", "-c", script, "--input={}"])
            defer { handler.close() }
            #expect(try handler.process("inside".bytes).first?.text == "INSIDE")
        }
    }

    @Test func nonZeroExitFailsWithStderr() throws {
        let script = "import sys; sys.stderr.write('bad input: ' + sys.stdin.read()); sys.exit(2)"
        do {
            let handler = try makeHandler(["python3", "-c", script])
            defer { handler.close() }
            let failed = failure { _ = try handler.process("xyz".bytes) }
            #expect(failed?.message.contains("exited with status 2") == true, "\(String(describing: failed))")
            #expect(failed?.stderr == "bad input: xyz")
        }
    }

    @Test func stderrIsCutToItsLast4KiB() throws {
        let script = "import sys; sys.stderr.write('x' * 100000 + 'END'); sys.exit(1)"
        do {
            let handler = try makeHandler(["python3", "-c", script])
            defer { handler.close() }
            let failed = failure { _ = try handler.process([]) }
            #expect(failed?.stderr?.utf8.count == 4096)
            #expect(failed?.stderr?.hasSuffix("END") == true)
        }
    }

    @Test func deathBySignalFails() throws {
        let script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        do {
            let handler = try makeHandler(["python3", "-c", script])
            defer { handler.close() }
            let failed = failure { _ = try handler.process([]) }
            #expect(failed?.message.contains("killed by signal 9") == true, "\(String(describing: failed))")
        }
    }

    @Test func timeoutKillsTheChild() throws {
        do {
            let handler = try makeHandler(["python3", "-c", "import time; time.sleep(60)"], timeout: .milliseconds(300))
            defer { handler.close() }
            let start = ContinuousClock.now
            let failed = failure { _ = try handler.process([]) }
            #expect(ContinuousClock.now - start < .seconds(5))
            #expect(failed?.message.contains("did not finish within 300ms") == true, "\(String(describing: failed))")
        }
    }

    @Test func jsonArrayStdoutGivesZeroOrMoreOutputs() throws {
        let script = "import json, sys; print(json.dumps(sys.stdin.read().split()))"
        do {
            let handler = try makeHandler(["python3", "-c", script], output: .jsonArray)
            defer { handler.close() }
            #expect(try handler.process("one two".bytes) == ["one".bytes, "two".bytes])
            #expect(try handler.process("   ".bytes) == [])
        }
        do {
            let handler = try makeHandler(["python3", "-c", "print('[1, 2]')"], output: .jsonArray)
            defer { handler.close() }
            #expect(failure { _ = try handler.process([]) }?.message.contains("JSON array of strings") == true)
        }
    }

    @Test func stageEnvironmentIsAddedToTheWorkers() throws {
        let script = "import os; print(os.environ['GREETING'] + ' ' + str('PATH' in os.environ))"
        do {
            let handler = try makeHandler(["python3", "-c", script], environment: ["GREETING": "hi"])
            defer { handler.close() }
            #expect(try handler.process([]) == ["hi True".bytes])
        }
    }

    @Test func concurrentSlotsDoNotInheritEachOthersPipes() {
        // If a child inherited another slot's stdin pipe, that `cat` would never see end of
        // file while the long-lived stream children run, and would hit its timeout.
        let mismatches = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { slot in
            guard
                let perItem = try? makeHandler(["cat"], timeout: .seconds(10)),
                let stream = try? StageHandlers.make(
                    for: .exec("stream", ["cat"], mode: .stream, timeout: .seconds(10)), swiftFunctions: [:],
                    workingDirectory: NSTemporaryDirectory())
            else {
                mismatches.add()
                return
            }
            defer {
                perItem.close()
                stream.close()
            }
            for index in 0..<25 {
                let item = "slot \(slot) item \(index)".bytes
                if (try? perItem.process(item)) != [item] || (try? stream.process(item)) != [item] {
                    mismatches.add()
                }
            }
        }
        #expect(mismatches.value == 0)
    }
}
