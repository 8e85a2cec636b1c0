// The one process harness of the integration tests: starts the built binary and helper programs as
// child processes with their output in files (a chatty child can never block on a full pipe), reads
// the broker's event feed, and makes sure no child outlives its test.

import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One child process whose standard output and error go to files in the harness directory.
final class ChildProcess {
    let name: String
    let process: Process
    let outputPath: String
    let errorPath: String

    init(name: String, process: Process, outputPath: String, errorPath: String) {
        self.name = name
        self.process = process
        self.outputPath = outputPath
        self.errorPath = errorPath
    }

    var isRunning: Bool { process.isRunning }
    /// The exit status, or nil while the process runs.
    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    var standardOutput: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    var standardError: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    /// The exit status, or nil if the process is still running after `timeout`.
    func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Standard output read as one JSON object per line (`lancompute events`, `--json` summaries);
    /// lines that are not JSON objects are left out.
    var jsonLines: [[String: Any]] {
        standardOutput.split(separator: "\n").compactMap { line in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
    }

    /// The `lancompute events` lines whose `type` is `type`.
    func events(_ type: String) -> [[String: Any]] { jsonLines.filter { $0["type"] as? String == type } }

    /// Waits until `condition` holds, or `timeout` passes; returns whether it held.
    func wait(until condition: () -> Bool, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Everything the process printed, for failure messages.
    var transcript: String { "--- \(name) stdout:\n\(standardOutput)\n--- \(name) stderr:\n\(standardError)" }
}

/// A temporary directory plus every process started in it; `shutDown()` (called from a `defer`)
/// kills what is still running, reaps it, and removes the directory.
final class ProcessHarness {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Short, so `ipc://` paths stay under the 107-byte limit of a Unix socket address.
    let directory: String
    private var children: [ChildProcess] = []

    init() throws {
        var template = Array("/tmp/lc-XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else {
            throw HarnessError("cannot create a temporary directory: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: path)
    }

    func path(_ name: String) -> String { "\(directory)/\(name)" }
    func ipc(_ name: String) -> String { "ipc://\(directory)/\(name)" }

    /// Starts `executable ARGUMENTS` in the package root; `environment` adds to (or replaces) this process's variables.
    @discardableResult
    func start(
        _ name: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil
    ) throws -> ChildProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? Self.packageRoot
        // Keys and cached stage files default to $LANCOMPUTE_HOME: the test's own directory, never the user's.
        var variables = ["LANCOMPUTE_HOME": path("home")]
        variables.merge(environment) { $1 }
        process.environment = ProcessInfo.processInfo.environment.merging(variables) { $1 }
        let outputPath = path("\(name).out")
        let errorPath = path("\(name).err")
        for file in [outputPath, errorPath] where !FileManager.default.createFile(atPath: file, contents: nil) {
            throw HarnessError("cannot create \(file)")
        }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let error = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        // The child has its own copies once it runs; ours would only leak.
        defer {
            try? output.close()
            try? error.close()
        }
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let child = ChildProcess(name: name, process: process, outputPath: outputPath, errorPath: errorPath)
        children.append(child)
        return child
    }

    /// Starts the built `lancompute` binary.
    @discardableResult
    func lancompute(
        _ name: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil
    ) throws -> ChildProcess {
        try start(name, CLI.path, arguments, environment: environment, directory: directory)
    }

    /// Starts a Python 3 program.
    @discardableResult
    func python(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        try start(name, "/usr/bin/env", ["python3"] + arguments)
    }

    /// Starts `lancompute events ENDPOINT` to record the broker's whole feed, metrics and events
    /// (it may start before the broker binds: ZeroMQ connects once it does, and the recording starts there).
    @discardableResult
    func watchEvents(_ endpoint: String, name: String = "events") throws -> ChildProcess {
        try lancompute(name, ["events", endpoint])
    }

    /// Waits until the broker at `dispatch` answers an MMI request, which it does only once its
    /// poll loop runs: every socket bound, the aggregator and source started.
    func waitUntilServing(_ dispatch: String, timeout: Duration = .seconds(20)) throws -> Bool {
        let client = try Socket(.dealer)
        defer { client.close() }
        try client.set(.linger, .zero)
        try client.connect(dispatch)
        // Queued until the connection is up, then delivered; the broker answers when its loop runs.
        try client.send(multipart: [[], Array("MDPC01".utf8), Array("mmi.service".utf8), Array("mmi.probe".utf8)])
        return try client.poll(.in, timeout: timeout).contains(.in)
    }

    /// Runs `lancompute ARGUMENTS` in the package root to completion (at most `timeout`, then it is killed).
    static func run(_ arguments: [String], timeout: Duration = .seconds(120)) throws -> CommandResult {
        let harness = try ProcessHarness()
        defer { harness.shutDown() }
        let child = try harness.lancompute("command", arguments)
        let status = child.wait(timeout: timeout) ?? -1
        return CommandResult(status: status, standardOutput: child.standardOutput, standardError: child.standardError)
    }

    /// Asks every live child to stop (SIGTERM), waits a moment, then SIGKILLs and reaps the rest.
    func shutDown() {
        for child in children { child.signal(SIGTERM) }
        for child in children where child.wait(timeout: .seconds(3)) == nil {
            child.signal(SIGKILL)
            _ = child.wait(timeout: .seconds(5))
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    var transcripts: String { children.map(\.transcript).joined(separator: "\n") }
}

/// What a command that ran to completion left behind.
struct CommandResult {
    var status: Int32
    var standardOutput: String
    var standardError: String
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
