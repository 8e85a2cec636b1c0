// Shared by the stage tests: scratch directories holding small helper scripts, and items from bare payloads.

import Foundation
@testable import LANCompute

/// A temp directory with executable scripts in it, removed by `remove()`.
struct ScriptDirectory {
    let path: String

    /// Writes each `name: text` in a new temp directory; texts starting with "#!" are made executable.
    init(_ scripts: [String: String]) throws {
        path = NSTemporaryDirectory() + "/lancompute-stage-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, text) in scripts {
            let file = path + "/" + name
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: file))
            try FileManager.default.setAttributes(
                [.posixPermissions: text.hasPrefix("#!") ? 0o755 : 0o644], ofItemAtPath: file)
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension StageSpec {
    /// An exec stage running `command`, as the tests build them.
    static func exec(
        _ name: String, _ command: [String], mode: ExecSpec.Mode, output: ExecSpec.Output = .line,
        timeout: Duration? = nil, environment: [String: String] = [:], workingDirectory: String? = nil
    ) -> StageSpec {
        StageSpec(
            name: name,
            handler: .exec(
                ExecSpec(
                    command: command, mode: mode, output: output, workingDirectory: workingDirectory,
                    environment: environment)),
            timeout: timeout)
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// A count shared by the threads of one test.
///
/// `@unchecked Sendable`: `count` is only touched under `lock`.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func add() {
        lock.lock()
        count += 1
        lock.unlock()
    }

    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}

extension StageHandler {
    /// Processes a bare payload, as an item that carries no metadata.
    func process(_ payload: [UInt8]) throws(StageFailure) -> [[UInt8]] {
        try process(StageItem(payload: payload))
    }
}
