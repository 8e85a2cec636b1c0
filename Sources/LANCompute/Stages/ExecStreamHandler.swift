// The exec stream mode: one long-lived child per slot, one line in and one line out per item.

import Foundation

/// Runs a stage's items through one long-lived child, started on the first item.
///
/// The item and "\n" go to the child's standard input; the child answers with exactly one
/// line on standard output (flushed). A child that exits, closes standard output or does not
/// answer within the stage's timeout fails the attempt, is killed, and is replaced by a new
/// child for the next item.
final class ExecStreamHandler: StageHandler {
    private let stageName: String
    private let command: ResolvedCommand
    private let output: ExecSpec.Output
    private let timeout: Duration?
    private var running: RunningChild?

    /// How long to wait, after the child stops answering, for its exit and the end of its stderr.
    private static let settleTime: Duration = .milliseconds(500)

    init(stageName: String, command: ResolvedCommand, output: ExecSpec.Output, timeout: Duration?) {
        self.stageName = stageName
        self.command = command
        self.output = output
        self.timeout = timeout
    }

    deinit { close() }

    func process(_ stageItem: StageItem) throws(StageFailure) -> [[UInt8]] {
        let item = stageItem.payload
        if item.contains(UInt8(ascii: "\n")) {
            throw StageFailure(
                "stage '\(stageName)': the item contains a newline, but exec stream mode is line-based "
                    + "(one line in, one line out per item); use mode per-item for multi-line items")
        }
        let deadline = AttemptDeadline(timeout: timeout)
        let child = try runningChild()
        let line: [UInt8]
        do throws(RunningChild.Problem) {
            try child.send(item, until: deadline)
            line = try child.receiveLine(until: deadline)
            // Nothing was asked since this item; more bytes mean more than one line for it.
            if child.hasUnreadOutput { throw RunningChild.Problem.extraOutput }
        } catch {
            running = nil
            throw describe(error, of: child)
        }
        return try decode(line)
    }

    func close() {
        running?.child.terminate()
        running = nil
    }

    private func runningChild() throws(StageFailure) -> RunningChild {
        if let running { return running }
        let child = try ChildProcess(
            command: command, arguments: command.arguments, standardInput: .pipe, nonBlockingStderr: false,
            stageName: stageName)
        let started = RunningChild(child: child, stderr: StderrTail.reading(child.takeStderr()))
        running = started
        return started
    }

    /// Ends the failed child and says why the attempt failed, with its recent stderr.
    private func describe(_ error: RunningChild.Problem, of running: RunningChild) -> StageFailure {
        let child = running.child
        let message: String
        switch error {
        case .timedOut:
            child.terminate()
            message =
                "stage '\(stageName)': the child (pid \(child.processIdentifier)) did not answer within "
                + "\(timeout?.shortDescription ?? "its timeout"); it was killed and a new one starts for the next item"
        case .extraOutput:
            child.terminate()
            message =
                "stage '\(stageName)': the child (pid \(child.processIdentifier)) wrote more than one line for "
                + "one item, but stream mode needs exactly one line per item; it was killed and a new one starts "
                + "for the next item"
        case .stdoutClosed, .stdinClosed:
            // It is going away: let it finish so that its exit status and last words are known.
            if !child.waitForExit(until: .after(Self.settleTime)) { child.terminate() }
            let what = error == .stdinClosed ? "closed its standard input" : "closed its standard output"
            message =
                "stage '\(stageName)': the child (pid \(child.processIdentifier)) \(what) before answering and "
                + "\(child.exitDescription); a new one starts for the next item"
        }
        running.stderr.waitUntilFinished(until: .after(Self.settleTime))
        child.closeStdin()
        child.closeStdout()
        let stderr = running.stderr.text
        return StageFailure(message, stderr: stderr.isEmpty ? nil : stderr)
    }

    private func decode(_ line: [UInt8]) throws(StageFailure) -> [[UInt8]] {
        switch output {
        case .line:
            return [line]
        case .jsonArray:
            guard let strings = StageJSON.stringArray(line) else {
                throw StageFailure(
                    "stage '\(stageName)': expected a JSON array of strings from the child, got: "
                        + StageJSON.excerpt(line))
            }
            return strings
        }
    }
}

@available(*, unavailable) extension ExecStreamHandler: Sendable {}

/// A started stream child, its unread standard output and the tail of its standard error.
private final class RunningChild {
    enum Problem: Error, Equatable {
        case timedOut
        case stdoutClosed
        case stdinClosed
        /// More than one line came back for one item: the child is out of step.
        case extraOutput
    }

    let child: ChildProcess
    let stderr: StderrTail
    /// Bytes read from standard output after the last complete line.
    private var unread: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(child: ChildProcess, stderr: StderrTail) {
        self.child = child
        self.stderr = stderr
    }

    var hasUnreadOutput: Bool { !unread.isEmpty }

    /// Writes `item` and "\n" to the child's standard input.
    func send(_ item: [UInt8], until deadline: AttemptDeadline) throws(Problem) {
        var message = item
        message.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < message.count {
            let result = message.withUnsafeBytes { bytes in
                PipeIO.write(child.stdin, UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            }
            switch result {
            case .wrote(let count):
                offset += count
            case .brokenPipe:
                throw .stdinClosed
            case .wouldBlock:
                var descriptors = [pollfd(fd: child.stdin, events: Int16(POLLOUT), revents: 0)]
                if !PipeIO.poll(&descriptors, until: deadline) { throw .timedOut }
            }
        }
    }

    /// Reads up to the next "\n" from the child's standard output; returns the line without it.
    func receiveLine(until deadline: AttemptDeadline) throws(Problem) -> [UInt8] {
        var searched = 0
        while true {
            if let newline = unread[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(unread[..<newline])
                unread.removeSubrange(...newline)
                return line
            }
            searched = unread.count
            let result = chunk.withUnsafeMutableBytes { PipeIO.read(child.stdout, into: $0) }
            switch result {
            case .bytes(let count):
                unread.append(contentsOf: chunk[0..<count])
            case .endOfFile:
                throw .stdoutClosed
            case .wouldBlock:
                var descriptors = [pollfd(fd: child.stdout, events: Int16(POLLIN), revents: 0)]
                if !PipeIO.poll(&descriptors, until: deadline) { throw .timedOut }
            }
        }
    }
}
