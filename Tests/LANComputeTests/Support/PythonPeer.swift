// Runs Python scripts (pyzmq, prometheus_client) as independent peers of the code under test.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `python3 -c SCRIPT` child process whose output goes to temporary files.
/// Always ``terminate()`` it (in a `defer`): a test never leaves a child behind.
final class PythonPeer {
    let process = Process()
    private let outputURL: URL
    private let errorURL: URL
    private let inputURL: URL?

    /// Starts `script` with `arguments` (in `sys.argv[1:]`), feeding it `input` on standard input.
    init(script: String, arguments: [String] = [], input: String? = nil) throws {
        let directory = FileManager.default.temporaryDirectory
        let unique = UUID().uuidString
        outputURL = directory.appendingPathComponent("python-peer-\(unique).out")
        errorURL = directory.appendingPathComponent("python-peer-\(unique).err")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", script] + arguments
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        if let input {
            let url = directory.appendingPathComponent("python-peer-\(unique).in")
            try Data(input.utf8).write(to: url)
            process.standardInput = try FileHandle(forReadingFrom: url)
            inputURL = url
        } else {
            process.standardInput = FileHandle.nullDevice
            inputURL = nil
        }
        try process.run()
    }

    /// Waits up to `timeout` for the child to exit; false if it is still running.
    @discardableResult
    func waitForExit(timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning && clock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        return !process.isRunning
    }

    /// Ends the child if it still runs (SIGTERM, then SIGKILL), and removes its files.
    func terminate() {
        if process.isRunning {
            process.terminate()
            if !waitForExit(timeout: .seconds(2)) {
                kill(process.processIdentifier, SIGKILL)
                waitForExit(timeout: .seconds(2))
            }
        }
        for url in [outputURL, errorURL] + (inputURL.map { [$0] } ?? []) {
            try? FileManager.default.removeItem(at: url)
        }
    }

    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }
    var errorOutput: String { (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "" }

    /// Runs `script` to completion (at most `timeout`) and returns its standard output.
    static func run(script: String, arguments: [String] = [], input: String? = nil,
                    timeout: Duration = .seconds(30)) throws -> (status: Int32?, output: String, error: String) {
        let peer = try PythonPeer(script: script, arguments: arguments, input: input)
        defer { peer.terminate() }
        peer.waitForExit(timeout: timeout)
        return (peer.exitStatus, peer.output, peer.errorOutput)
    }
}

/// Parses one JSON object (the last line of a peer's output, usually).
func jsonObject(_ text: some StringProtocol) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}
