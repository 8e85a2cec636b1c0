// Starts the built binary and helper programs as child processes, and makes sure none outlives its test.

import Foundation
import Testing

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

    /// Waits until standard error contains `text` (a readiness line), or the process exits, or `timeout` passes.
    func waitForError(containing text: String, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if standardError.contains(text) { return true }
            if !process.isRunning { return standardError.contains(text) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
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
    func start(_ name: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = CommandRunner.packageRoot
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
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
    func lancompute(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
        try start(name, CLI.path, arguments, environment: environment)
    }

    /// Starts a Python 3 program.
    @discardableResult
    func python(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        try start(name, "/usr/bin/env", ["python3"] + arguments)
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

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
