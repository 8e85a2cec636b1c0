// Runs the built lancompute binary as a child process for a test; killed and reaped when released.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process whose output goes to files; killed and reaped when the test ends.
final class CLIProcess {
    let process = Process()
    let log: URL

    init(_ arguments: [String], directory: URL, name: String) throws {
        log = directory.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: CLI.path)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func kill(_ signal: Int32 = SIGKILL) {
        if process.isRunning { sendSignal(process.processIdentifier, signal) }
    }

    /// Waits up to `timeout` for the process to exit; its status, or nil if it is still running.
    func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    deinit {
        kill()
        _ = wait(timeout: .seconds(5))
    }
}


private func sendSignal(_ pid: Int32, _ signal: Int32) {
    _ = kill(pid, signal)
}
