// Runs the built lancompute binary as a user would.

import Foundation
import Testing

@Suite struct BinaryTests {
    @Test func binaryIsBuilt() throws {
        #expect(FileManager.default.fileExists(atPath: CLI.path), "build lancompute before the tests: \(CLI.path)")
    }

    @Test func anUnknownSubcommandIsNamedWithTheRealOnes() throws {
        let result = try ProcessHarness.run(["rnu", "Topologies/wordcount.yaml"])
        #expect(result.status == 64, "\(result.standardError)")
        let lines = result.standardError.split(separator: "\n")
        #expect(lines.count == 1, "one line, not the whole usage: \(result.standardError)")
        let line = String(lines.first ?? "")
        #expect(line.contains("'rnu'"))
        #expect(line.contains("did you mean 'run'?"))
        for subcommand in ["run", "broker", "worker", "feed", "events", "top", "validate", "graph", "doctor"] {
            #expect(line.contains(subcommand), "\(subcommand) is not listed: \(line)")
        }
    }

    /// On Linux the executable links mimalloc ahead of the C library (Package.swift): doctor asks
    /// mimalloc whether a block from `malloc` is its own, so a build where the C library's malloc won
    /// after all says so.
    @Test func doctorNamesTheAllocatorThatServesMalloc() throws {
        let result = try ProcessHarness.run(["doctor"])
        #expect(result.status == 0, "\(result.standardError)")
        let line = result.standardOutput.split(separator: "\n").first { $0.hasPrefix("allocator") }.map(String.init) ?? ""
        #if os(Linux)
        #expect(line.range(of: #"^allocator +mimalloc [0-9]+\.[0-9]+\.[0-9]+$"#, options: .regularExpression) != nil, "\(result.standardOutput)")
        #else
        #expect(line.hasSuffix("the system's"), "\(result.standardOutput)")
        #endif
    }

    #if os(Linux)
    /// The C library preloaded ahead of mimalloc serves `malloc` instead: doctor says so rather than
    /// naming the allocator that is only linked.
    @Test func doctorSaysWhenAnotherAllocatorServesMalloc() throws {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let doctor = try harness.lancompute("doctor", ["doctor"], environment: ["LD_PRELOAD": "libc.so.6"])
        #expect(doctor.wait(timeout: .seconds(60)) == 0, "\(harness.transcripts)")
        let line = doctor.standardOutput.split(separator: "\n").first { $0.hasPrefix("allocator") }.map(String.init) ?? ""
        #expect(line.contains("linked, but malloc is another allocator's"), "\(doctor.standardOutput)")
    }
    #endif

    @Test func aWordFarFromEverySubcommandGetsNoGuess() throws {
        let result = try ProcessHarness.run(["frobnicate"])
        #expect(result.status == 64)
        #expect(result.standardError.contains("'frobnicate'"))
        #expect(!result.standardError.contains("did you mean"))
    }
}

/// Where the built `lancompute` binary is: next to the test bundle.
enum CLI {
    static var path: String {
        let bundle = Bundle.main.bundleURL
        let candidates = [
            bundle.appendingPathComponent("lancompute").path,
            bundle.deletingLastPathComponent().appendingPathComponent("lancompute").path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }
}
