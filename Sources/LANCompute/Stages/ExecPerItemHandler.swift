// The exec per-item mode: one process per item, the item on its standard input or in a temp file.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs one child per item.
///
/// The item goes to the child's standard input, which is then closed; if an argument contains
/// "{}", every "{}" in it is replaced by the path of a temp file holding the item, the child's
/// standard input is empty, and the file is removed afterwards. The whole standard output is
/// the result. A non-zero exit, a signal or the stage's timeout (the child is killed) fails the
/// attempt, with the tail of the child's standard error.
final class ExecPerItemHandler: StageHandler {
    private let stageName: String
    private let command: ResolvedCommand
    private let output: ExecSpec.Output
    private let timeout: Duration?
    private let usesItemFile: Bool
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(stageName: String, command: ResolvedCommand, output: ExecSpec.Output, timeout: Duration?) {
        self.stageName = stageName
        self.command = command
        self.output = output
        self.timeout = timeout
        self.usesItemFile = command.arguments.contains { $0.contains("{}") }
    }

    func process(_ stageItem: StageItem) throws(StageFailure) -> [[UInt8]] {
        let item = stageItem.payload
        let deadline = AttemptDeadline(timeout: timeout)
        var arguments = command.arguments
        var itemFile: String?
        defer { if let itemFile { unlink(itemFile) } }
        if usesItemFile {
            let path = try writeItemFile(item)
            itemFile = path
            // As in GNU parallel and find -exec: `--input={}` works as well as a bare `{}`.
            arguments = arguments.map { $0.replacingOccurrences(of: "{}", with: path) }
        }
        let child = try ChildProcess(
            command: command, arguments: arguments, standardInput: usesItemFile ? .none : .pipe,
            nonBlockingStderr: true, stageName: stageName)
        defer { child.terminate() }

        let stderr = StderrTail()
        let stdout: [UInt8]
        do {
            stdout = try exchange(with: child, input: usesItemFile ? [] : item, stderr: stderr, until: deadline)
        } catch {
            child.terminate()
            throw StageFailure(
                "stage '\(stageName)': the child (pid \(child.processIdentifier)) did not finish within "
                    + "\(timeout?.shortDescription ?? "its timeout") and was killed",
                stderr: nonEmpty(stderr.text))
        }
        if !child.waitForExit(until: deadline) {
            child.terminate()
            throw StageFailure(
                "stage '\(stageName)': the child (pid \(child.processIdentifier)) closed its output but did not exit "
                    + "within \(timeout?.shortDescription ?? "its timeout"); it was killed",
                stderr: nonEmpty(stderr.text))
        }
        guard child.exitedSuccessfully else {
            throw StageFailure(
                "stage '\(stageName)': '\(command.executable)' \(child.exitDescription)", stderr: nonEmpty(stderr.text))
        }
        return try decode(stdout)
    }

    func close() {}

    private struct TimedOut: Error {}

    /// Writes `input` to the child while draining its standard output and error, until both reach end of file.
    private func exchange(
        with child: ChildProcess, input: [UInt8], stderr: StderrTail, until deadline: AttemptDeadline
    ) throws(TimedOut) -> [UInt8] {
        var stdout = [UInt8]()
        var written = 0
        if input.isEmpty { child.closeStdin() }
        while child.stdout >= 0 || child.stderr >= 0 {
            var descriptors = [pollfd]()
            if child.stdin >= 0 { descriptors.append(pollfd(fd: child.stdin, events: Int16(POLLOUT), revents: 0)) }
            if child.stdout >= 0 { descriptors.append(pollfd(fd: child.stdout, events: Int16(POLLIN), revents: 0)) }
            if child.stderr >= 0 { descriptors.append(pollfd(fd: child.stderr, events: Int16(POLLIN), revents: 0)) }
            if !PipeIO.poll(&descriptors, until: deadline) { throw TimedOut() }
            for descriptor in descriptors where descriptor.revents != 0 {
                if descriptor.fd == child.stdin {
                    let result = input.withUnsafeBytes { bytes in
                        PipeIO.write(child.stdin, UnsafeRawBufferPointer(rebasing: bytes[written...]))
                    }
                    switch result {
                    case .wrote(let count): written += count
                    case .wouldBlock: break
                    // The child does not want (the rest of) its input; that is its business.
                    case .brokenPipe: written = input.count
                    }
                    if written == input.count { child.closeStdin() }
                } else if descriptor.fd == child.stdout {
                    switch chunk.withUnsafeMutableBytes({ PipeIO.read(child.stdout, into: $0) }) {
                    case .bytes(let count): stdout.append(contentsOf: chunk[0..<count])
                    case .endOfFile: child.closeStdout()
                    case .wouldBlock: break
                    }
                } else if descriptor.fd == child.stderr {
                    switch chunk.withUnsafeMutableBytes({ PipeIO.read(child.stderr, into: $0) }) {
                    case .bytes(let count): stderr.append(chunk[0..<count])
                    case .endOfFile: child.closeStderr()
                    case .wouldBlock: break
                    }
                }
            }
        }
        child.closeStdin()
        return stdout
    }

    private func writeItemFile(_ item: [UInt8]) throws(StageFailure) -> String {
        let pattern = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("lancompute-item-XXXXXX")
        var template = Array(pattern.path.utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw StageFailure("stage '\(stageName)': could not create a temp file for the item (errno \(errno))")
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { PipeIO.close(fd) }
        var offset = 0
        while offset < item.count {
            let result = item.withUnsafeBytes { PipeIO.write(fd, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            guard case .wrote(let count) = result else {
                unlink(path)
                throw StageFailure("stage '\(stageName)': could not write the item to the temp file \(path)")
            }
            offset += count
        }
        return path
    }

    private func decode(_ stdout: [UInt8]) throws(StageFailure) -> [[UInt8]] {
        switch output {
        case .line:
            if stdout.last == UInt8(ascii: "\n") { return [Array(stdout.dropLast())] }
            return [stdout]
        case .jsonArray:
            guard let strings = StageJSON.stringArray(stdout) else {
                throw StageFailure(
                    "stage '\(stageName)': expected a JSON array of strings on the child's standard output, got: "
                        + StageJSON.excerpt(stdout))
            }
            return strings
        }
    }

    private func nonEmpty(_ text: String) -> String? { text.isEmpty ? nil : text }
}

@available(*, unavailable) extension ExecPerItemHandler: Sendable {}
