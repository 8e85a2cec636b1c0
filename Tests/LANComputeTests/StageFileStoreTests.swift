// What the broker ships on mmi.file: only files under the topology's directory that a command names, by digest.

import Foundation
import Testing
@testable import LANCompute

@Suite struct StageFileStoreTests {
    /// A topology directory with `scripts/run.py`, an executable `bin/tool`, a file outside it and a link leaving it.
    func directory() throws -> (root: String, outside: String) {
        let base = NSTemporaryDirectory() + "stagefiles-\(UUID().uuidString)"
        let root = base + "/pipeline"
        let manager = FileManager.default
        try manager.createDirectory(atPath: root + "/scripts", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try "print('run')\n".write(toFile: root + "/scripts/run.py", atomically: true, encoding: .utf8)
        try "#!/bin/sh\necho tool\n".write(toFile: root + "/bin/tool", atomically: true, encoding: .utf8)
        chmod(root + "/bin/tool", 0o755)
        try "secret\n".write(toFile: base + "/secret.txt", atomically: true, encoding: .utf8)
        try manager.createSymbolicLink(atPath: root + "/scripts/leak.txt", withDestinationPath: base + "/secret.txt")
        return (root, base)
    }

    func topology(_ command: [String], workingDirectory: String? = nil) -> Topology {
        Topology(name: "t", source: SourceSpec(kind: .stdin), stages: [
            StageSpec(name: "s", handler: .exec(ExecSpec(command: command, workingDirectory: workingDirectory))),
        ], sink: SinkSpec(kind: .stdout))
    }

    @Test func shipsTheFilesACommandNamesUnderTheDirectoryAndServesThemByDigest() throws {
        let (root, base) = try directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let store = StageFileStore(topology: topology(["python3", "-u", "scripts/run.py", "scripts/run.py", "--flag", "{}"]), directory: root)
        let files = try #require(store.manifest["s"])
        #expect(files.map(\.path) == ["scripts/run.py"], "python3 is a name on PATH, the rest are no files; duplicates once")
        let content = Array("print('run')\n".utf8)
        #expect(files.first == StageFile(path: "scripts/run.py", sha256: SHA256.hexDigest(content), size: content.count, executable: false))
        #expect(store.reply(to: [Array(files[0].sha256.utf8)]) == StageFileReply(status: .found, sha256: files[0].sha256, content: content))
        #expect(store.warnings.isEmpty)
    }

    @Test func aProgramWithASlashIsShippedExecutableRelativeToTheWorkingDirectory() throws {
        let (root, base) = try directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let store = StageFileStore(topology: topology(["../bin/tool", "run.py"], workingDirectory: "scripts"), directory: root)
        #expect(store.manifest["s"]?.map(\.path) == ["../bin/tool", "run.py"])
        #expect(store.manifest["s"]?.map(\.executable) == [true, false])
    }

    @Test func filesOutsideTheDirectoryAreNeverShippedAndAreWarnedAbout() throws {
        let (root, base) = try directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let store = StageFileStore(topology: topology(["cat", "../secret.txt", "scripts/leak.txt", base + "/secret.txt"]), directory: root)
        #expect(store.manifest.isEmpty)
        #expect(store.warnings.count == 2, "the .. path and the link that leaves; an absolute path is the worker's own: \(store.warnings)")
        #expect(store.warnings.allSatisfy { $0.contains("outside the topology's directory") })
        let secret = SHA256.hexDigest(Array("secret\n".utf8))
        #expect(store.reply(to: [Array(secret.utf8)]).status == .notFound, "a digest of a file not collected is not served")
    }

    @Test func requestsThatAreNoDigestAreMalformed() {
        let store = StageFileStore()
        #expect(store.reply(to: []).status == .malformed)
        #expect(store.reply(to: [Array("../../etc/passwd".utf8)]).status == .malformed)
        #expect(store.reply(to: [Array(String(repeating: "a", count: 64).utf8), [1]]).status == .malformed)
        #expect(StageFileReply(body: StageFileReply(status: .notFound, sha256: String(repeating: "b", count: 64)).frames)?.status == .notFound)
    }

    @Test func aTooLargeFileIsNotShipped() throws {
        let (root, base) = try directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try Data(count: StageFiles.maxFileSize + 1).write(to: URL(fileURLWithPath: root + "/big.bin"))
        let store = StageFileStore(topology: topology(["python3", "big.bin"]), directory: root)
        #expect(store.manifest.isEmpty)
        #expect(store.warnings.first?.contains("beyond what the broker ships") == true)
    }

    @Test func theUnservedReportRoundTripsAndRefusesAMalformedBody() throws {
        let report = UnservedReport(node: "n1", stages: [UnservedStage(stage: "a", reason: "needs label gpu=yes")])
        #expect(try UnservedReport(body: report.frames) == report)
        #expect(throws: WireError.self) { try UnservedReport(body: [Array("n1".utf8), Array("a".utf8)]) }
        #expect(throws: WireError.self) { try UnservedReport(body: [[]]) }
    }
}
