// Every command refuses to start on a libzmq older than 4.3.3, with one line naming both versions.

import Foundation
import Testing

@Suite(.timeLimit(.minutes(2))) struct LibraryVersionCheckTests {
    @Test func theBinaryRefusesAnOldLibzmq() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        // A library that answers zmq_version as libzmq 4.3.2 would, loaded ahead of the real one.
        let source = harness.path("old-zmq.c")
        try "void zmq_version(int *major, int *minor, int *patch) { *major = 4; *minor = 3; *patch = 2; }\n"
            .write(toFile: source, atomically: true, encoding: .utf8)
        let library = harness.path("old-zmq.so")
        let compiler = try harness.start("cc", "/usr/bin/env", ["clang", "-shared", "-fPIC", "-o", library, source])
        try #require(compiler.wait(timeout: .seconds(60)) == 0, "\(compiler.transcript)")

        let old = try harness.lancompute("old", ["validate", "Topologies/wordcount.yaml"], environment: ["LD_PRELOAD": library])
        #expect(old.wait(timeout: .seconds(30)) == 1)
        let lines = old.standardError.split(separator: "\n")
        #expect(lines.count == 1, "\(old.standardError)")
        #expect(lines.first?.hasPrefix("lancompute: error LC2085: libzmq 4.3.2 is older than 4.3.3") == true, "\(old.standardError)")

        let current = try harness.lancompute("current", ["validate", "Topologies/wordcount.yaml"])
        #expect(current.wait(timeout: .seconds(30)) == 0, "\(current.transcript)")
    }
}
