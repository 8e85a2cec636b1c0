// Checks which stages a worker can serve and the handlers made for Swift functions.

import Foundation
import Testing
@testable import LANCompute

@Suite struct StageHandlersTests {
    private let directory = NSTemporaryDirectory()

    @Test func builtinsAreAvailableWhenKnownAndWellConfigured() {
        let known = StageSpec(name: "u", handler: .builtin(name: "upper", options: [:]))
        #expect(StageHandlers.availability(of: known, swiftFunctions: [:], workingDirectory: directory) == .available)
        let unknown = StageSpec(name: "x", handler: .builtin(name: "frobnicate", options: [:]))
        guard
            case .unavailable(let reason) = StageHandlers.availability(
                of: unknown, swiftFunctions: [:], workingDirectory: directory)
        else {
            Issue.record("an unknown builtin must be unavailable")
            return
        }
        #expect(reason.contains("frobnicate"))
    }

    @Test func externalStagesNeedARegisteredFunction() throws {
        let stage = StageSpec(name: "reverse", handler: .external)
        #expect(!StageHandlers.availability(of: stage, swiftFunctions: [:], workingDirectory: directory).isAvailable)
        let functions: [String: SwiftStageFunction] = ["reverse": { item in [item.reversed()] }]
        #expect(StageHandlers.availability(of: stage, swiftFunctions: functions, workingDirectory: directory) == .available)
        let handler = try StageHandlers.make(for: stage, swiftFunctions: functions, workingDirectory: directory)
        defer { handler.close() }
        #expect(try handler.process("abc".bytes) == ["cba".bytes])
        #expect(throws: StageFailure.self) {
            try StageHandlers.make(for: stage, swiftFunctions: [:], workingDirectory: directory)
        }
    }

    @Test func swiftFunctionErrorsBecomeFailures() throws {
        struct Broken: Error {}
        let functions: [String: SwiftStageFunction] = [
            "broken": { _ in throw Broken() }, "explicit": { _ in throw StageFailure("explained") },
        ]
        let broken = try StageHandlers.make(
            for: StageSpec(name: "broken", handler: .external), swiftFunctions: functions, workingDirectory: directory)
        #expect(throws: StageFailure.self) { try broken.process([]) }
        let explicit = try StageHandlers.make(
            for: StageSpec(name: "explicit", handler: .external), swiftFunctions: functions, workingDirectory: directory)
        #expect(throws: StageFailure("explained")) { try explicit.process([]) }
    }

    @Test func execCommandsResolveOnPathAndRelativeToTheWorkingDirectory() throws {
        let scripts = try ScriptDirectory(["tools/hello.sh": "#!/bin/sh\necho hello\n", "tools/plain.txt": "x"])
        defer { scripts.remove() }
        func availability(_ command: [String], workingDirectory: String? = nil) -> StageAvailability {
            StageHandlers.availability(
                of: .exec("e", command, mode: .perItem, workingDirectory: workingDirectory), swiftFunctions: [:],
                workingDirectory: scripts.path)
        }
        #expect(availability(["sh", "-c", "true"]) == .available)
        #expect(availability(["/bin/sh"]) == .available)
        #expect(availability(["./tools/hello.sh"]) == .available)
        #expect(availability(["./hello.sh"], workingDirectory: "tools") == .available)
        #expect(!availability(["./tools/plain.txt"]).isAvailable)
        #expect(!availability(["./missing.sh"]).isAvailable)
        #expect(!availability(["no-such-program-anywhere"]).isAvailable)
        #expect(!availability([]).isAvailable)
        #expect(!availability(["sh"], workingDirectory: "no-such-directory").isAvailable)

        let handler = try StageHandlers.make(
            for: .exec("e", ["./hello.sh"], mode: .perItem, workingDirectory: "tools"), swiftFunctions: [:],
            workingDirectory: scripts.path)
        defer { handler.close() }
        #expect(try handler.process([]) == ["hello".bytes])
    }

    @Test func failureDescriptionIncludesStderr() {
        #expect(StageFailure("boom").description == "boom")
        #expect(StageFailure("boom", stderr: "trace").description == "boom\nstderr:\ntrace")
    }
}
