// The broker writes and removes only regular files of its own: a device, a directory or a symbolic link given as the sink or the dead-letter file is refused and left as it was.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(3))) struct OutputPathSafetyTests {
    /// A one-stage run over three lines, sink `out.txt` unless `sink` says otherwise.
    static func topology(in harness: ProcessHarness, sink: String? = nil) throws -> String {
        try "a\nb\nc\n".write(toFile: harness.path("input.txt"), atomically: true, encoding: .utf8)
        let path = harness.path("safety.yaml")
        try """
            version: 1
            name: safety
            source:
              file: \(harness.path("input.txt"))
            stages:
              - name: upper
                builtin: upper
            sink:
              file: \(sink ?? harness.path("out.txt"))
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func run(_ arguments: [String], in harness: ProcessHarness) throws -> (status: Int32, output: String) {
        let child = try harness.lancompute("run-\(UUID().uuidString.prefix(6))", ["run"] + arguments + ["--events", "none", "--state", "none"])
        let status = child.wait(timeout: .seconds(60))
        return (status ?? -1, child.standardOutput + child.standardError)
    }

    static func fileType(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & mode_t(S_IFMT) : nil
    }

    @Test func aDeviceNodeGivenAsDeadLetterFileIsRefusedAndKept() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let device = harness.path("device")
        // The same device as /dev/null (character device 1:3: glibc encodes a small major:minor as
        // major << 8 | minor); making one needs root, as the tests run.
        try #require(mknod(device, mode_t(S_IFCHR) | 0o600, dev_t(1 << 8 | 3)) == 0, "mknod: \(String(cString: strerror(errno)))")
        let result = try Self.run([try Self.topology(in: harness), "--dead-letter", device], in: harness)
        #expect(result.status != 0)
        #expect(result.output.contains("LC2016"), "\(result.output)")
        #expect(result.output.contains("is a character device"), "\(result.output)")
        #expect(Self.fileType(device) == mode_t(S_IFCHR), "the device node is gone")
    }

    @Test func aDirectoryGivenAsDeadLetterFileIsNotDeleted() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let directory = harness.path("precious")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "keep me".write(toFile: "\(directory)/file.txt", atomically: true, encoding: .utf8)
        let result = try Self.run([try Self.topology(in: harness), "--dead-letter", directory], in: harness)
        #expect(result.status != 0)
        #expect(result.output.contains("LC2016") && result.output.contains("is a directory"), "\(result.output)")
        #expect(try String(contentsOfFile: "\(directory)/file.txt", encoding: .utf8) == "keep me")
    }

    @Test func aSinkThatIsASymbolicLinkDoesNotOverwriteItsTarget() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let target = harness.path("elsewhere.txt")
        try "someone else's data\n".write(toFile: target, atomically: true, encoding: .utf8)
        let link = harness.path("out-link.txt")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let result = try Self.run([try Self.topology(in: harness, sink: link)], in: harness)
        #expect(result.status != 0)
        #expect(result.output.contains("LC2013") && result.output.contains("symbolic link"), "\(result.output)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "someone else's data\n")
        #expect(Self.fileType(link) == mode_t(S_IFLNK))
    }

    @Test func aRegularFileOfOursIsStillReplaced() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        try "old run\n".write(toFile: harness.path("out.txt"), atomically: true, encoding: .utf8)
        try "{}\n".write(toFile: harness.path("dead.jsonl"), atomically: true, encoding: .utf8)
        let result = try Self.run([try Self.topology(in: harness), "--dead-letter", harness.path("dead.jsonl")], in: harness)
        #expect(result.status == 0, "\(result.output)")
        let sink = try String(contentsOfFile: harness.path("out.txt"), encoding: .utf8)
        #expect(sink.split(separator: "\n").sorted() == ["A", "B", "C"])
        #expect(!FileManager.default.fileExists(atPath: harness.path("dead.jsonl")), "the earlier run's dead letters stay")
    }
}
