// Checks the exec stream mode with python3 children: answers, crashes, hangs and JSON-array output.

import Foundation
import Testing
@testable import LANCompute

@Suite(.timeLimit(.minutes(1))) struct ExecStreamTests {
    private static let scripts = [
        "upper.py": """
        import sys
        for line in sys.stdin:
            sys.stdout.write(line.upper())
            sys.stdout.flush()
        """,
        "crash.py": """
        import sys
        for line in sys.stdin:
            if line.strip() == "boom":
                sys.stderr.write("about to crash on boom\\n")
                sys.stderr.flush()
                sys.exit(3)
            sys.stdout.write(line)
            sys.stdout.flush()
        """,
        "hang.py": """
        import sys, time
        for line in sys.stdin:
            if line.strip() == "hang":
                time.sleep(60)
            sys.stdout.write(line)
            sys.stdout.flush()
        """,
        "words.py": """
        import json, sys
        for line in sys.stdin:
            if line.strip() == "garbage":
                print("not json", flush=True)
            else:
                print(json.dumps(line.split()), flush=True)
        """,
        "chatty.py": """
        import sys
        for line in sys.stdin:
            sys.stdout.write(line + line if line.strip() == "twice" else line)
            sys.stdout.flush()
        """,
        "pid.py": """
        import os, sys
        for line in sys.stdin:
            print(os.getpid(), flush=True)
        """,
    ]

    /// A stream handler running `script`; the caller closes it and removes the directory.
    private func makeHandler(
        _ script: String, output: ExecSpec.Output = .line, timeout: Duration? = nil
    ) throws -> (any StageHandler, ScriptDirectory) {
        let directory = try ScriptDirectory(Self.scripts)
        do {
            let handler = try StageHandlers.make(
                for: .exec("stream", ["python3", script], mode: .stream, output: output, timeout: timeout),
                swiftFunctions: [:], workingDirectory: directory.path)
            return (handler, directory)
        } catch {
            directory.remove()
            throw error
        }
    }

    private func failure(_ body: () throws -> Void) -> StageFailure? {
        do {
            try body()
            return nil
        } catch {
            return error as? StageFailure
        }
    }

    @Test func uppercasesLineByLine() throws {
        let (handler, directory) = try makeHandler("upper.py")
        defer {
            handler.close()
            directory.remove()
        }
        for word in ["alpha", "béta", "", "x y z"] {
            #expect(try handler.process(word.bytes) == [word.uppercased().bytes])
        }
    }

    @Test func oneChildServesManyItems() throws {
        let (handler, directory) = try makeHandler("pid.py")
        defer {
            handler.close()
            directory.remove()
        }
        let first = try handler.process("a".bytes)
        for _ in 0..<20 {
            #expect(try handler.process("b".bytes) == first)
        }
    }

    @Test func crashFailsTheAttemptThenANewChildServesTheNextItem() throws {
        let (handler, directory) = try makeHandler("crash.py")
        defer {
            handler.close()
            directory.remove()
        }
        #expect(try handler.process("a".bytes) == ["a".bytes])
        let crash = failure { _ = try handler.process("boom".bytes) }
        #expect(crash?.message.contains("status 3") == true, "\(String(describing: crash))")
        #expect(crash?.stderr?.contains("about to crash on boom") == true)
        #expect(try handler.process("b".bytes) == ["b".bytes])
        #expect(try handler.process("c".bytes) == ["c".bytes])
    }

    @Test func hangTimesOutThenANewChildServesTheNextItem() throws {
        // The timeout covers each attempt, the child's start included: 2 s leaves room on a busy machine.
        let (handler, directory) = try makeHandler("hang.py", timeout: .seconds(2))
        defer {
            handler.close()
            directory.remove()
        }
        #expect(try handler.process("x".bytes) == ["x".bytes])
        let start = ContinuousClock.now
        let hang = failure { _ = try handler.process("hang".bytes) }
        #expect(ContinuousClock.now - start < .seconds(8))
        #expect(hang?.message.contains("did not answer within 2s") == true, "\(String(describing: hang))")
        #expect(try handler.process("y".bytes) == ["y".bytes])
    }

    @Test func jsonArrayLinesGiveZeroOrMoreOutputs() throws {
        let (handler, directory) = try makeHandler("words.py", output: .jsonArray)
        defer {
            handler.close()
            directory.remove()
        }
        #expect(try handler.process("a b c".bytes) == ["a".bytes, "b".bytes, "c".bytes])
        #expect(try handler.process("".bytes) == [])
        let garbage = failure { _ = try handler.process("garbage".bytes) }
        #expect(garbage?.message.contains("\"not json\"") == true, "\(String(describing: garbage))")
        // The child stayed in step: the next answer is the next item's.
        #expect(try handler.process("d".bytes) == ["d".bytes])
    }

    @Test func twoLinesForOneItemFailAndRestartTheChild() throws {
        let (handler, directory) = try makeHandler("chatty.py")
        defer {
            handler.close()
            directory.remove()
        }
        #expect(try handler.process("once".bytes) == ["once".bytes])
        let chatty = failure { _ = try handler.process("twice".bytes) }
        #expect(chatty?.message.contains("more than one line") == true, "\(String(describing: chatty))")
        // The new child is in step again.
        #expect(try handler.process("after".bytes) == ["after".bytes])
    }

    @Test func itemsWithNewlinesAreRefused() throws {
        let (handler, directory) = try makeHandler("upper.py")
        defer {
            handler.close()
            directory.remove()
        }
        let refused = failure { _ = try handler.process("two\nlines".bytes) }
        #expect(refused?.message.contains("line-based") == true)
        #expect(try handler.process("ok".bytes) == ["OK".bytes])
    }

    @Test func closeEndsTheChild() throws {
        let (handler, directory) = try makeHandler("pid.py")
        defer {
            handler.close()  // A second close does nothing.
            directory.remove()
        }
        let pid = Int32(try handler.process("a".bytes)[0].text) ?? 0
        handler.close()
        #expect(pid > 0)
        // The child is gone and reaped: no process (not even a zombie) has its pid.
        #expect(kill(pid, 0) == -1)
    }
}
