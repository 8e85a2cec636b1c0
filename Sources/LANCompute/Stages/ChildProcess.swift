// Where an exec stage's program is found, and one running child with its pipes, killed and reaped on request.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An exec stage's program, resolved on this machine.
///
/// Commands resolve on the worker's own filesystem: on a remote worker a relative path or a
/// name on `PATH` means that machine's file, so the program must be installed there.
struct ResolvedCommand: Sendable, Equatable {
    /// Absolute path of the program.
    var executable: String
    /// The arguments after argv[0].
    var arguments: [String]
    /// Absolute working directory of the child.
    var directory: String
    /// The worker's environment plus the stage's `environment`.
    var environment: [String: String]

    /// Resolves `exec` against `workerDirectory` (itself relative to the current directory if relative).
    ///
    /// argv[0] containing "/" is taken relative to the child's working directory; otherwise it is
    /// looked up on `PATH` (the child's, so a stage may set its own `PATH`).
    static func resolve(_ exec: ExecSpec, stageName: String, workerDirectory: String) -> Result<Self, StageFailure> {
        guard let program = exec.command.first, !program.isEmpty else {
            return .failure(StageFailure("stage '\(stageName)': the exec command is empty"))
        }
        let base = absolute(workerDirectory, relativeTo: FileManager.default.currentDirectoryPath)
        let directory = exec.workingDirectory.map { absolute($0, relativeTo: base) } ?? base
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            return .failure(StageFailure("stage '\(stageName)': working directory '\(directory)' does not exist"))
        }
        var environment = ProcessInfo.processInfo.environment
        environment.merge(exec.environment) { _, stage in stage }

        let executable: String
        if program.contains("/") {
            let candidate = absolute(program, relativeTo: directory)
            guard isExecutableFile(candidate) else {
                return .failure(
                    StageFailure("stage '\(stageName)': '\(candidate)' is not an executable file on this machine"))
            }
            executable = candidate
        } else {
            let searchPath = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            let found = searchPath.split(separator: ":").lazy
                .filter { !$0.isEmpty }
                .map { "\($0)/\(program)" }
                .first(where: isExecutableFile)
            guard let found else {
                return .failure(
                    StageFailure("stage '\(stageName)': '\(program)' was not found on PATH on this machine"))
            }
            executable = absolute(found, relativeTo: directory)
        }
        return .success(
            ResolvedCommand(
                executable: executable, arguments: Array(exec.command.dropFirst()), directory: directory,
                environment: environment))
    }

    private static func absolute(_ path: String, relativeTo base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && access(path, X_OK) == 0
    }
}

/// One running child: its pipes as raw descriptors owned here, and its exit.
///
/// Foundation's `Process` starts and reaps the child; the pipe ends are duplicated with
/// close-on-exec so that no other child inherits them, and are read and written with
/// `poll(2)` so that no call blocks past an attempt's deadline.
final class ChildProcess {
    enum StandardInput {
        /// A pipe we write items to.
        case pipe
        /// Nothing: the child reads end of file at once.
        case none
    }

    let process: Process
    /// Our end of the child's standard input (non-blocking); -1 when closed or absent.
    private(set) var stdin: Int32 = -1
    /// Our end of the child's standard output (non-blocking); -1 once closed.
    private(set) var stdout: Int32 = -1
    /// Our end of the child's standard error (blocking for a reader thread, or non-blocking);
    /// -1 once handed over or closed.
    private(set) var stderr: Int32 = -1
    private let exited = DispatchSemaphore(value: 0)
    private var reaped = false

    init(
        command: ResolvedCommand, arguments: [String], standardInput: StandardInput, nonBlockingStderr: Bool,
        stageName: String
    ) throws(StageFailure) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command.executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: command.directory, isDirectory: true)
        process.environment = command.environment
        let inputPipe = standardInput == .pipe ? Pipe() : nil
        let outputPipe = Pipe()
        let errorPipe = Pipe()
        process.standardInput = inputPipe ?? FileHandle.nullDevice
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        let exited = self.exited
        process.terminationHandler = { _ in exited.signal() }
        do {
            try process.run()
        } catch {
            throw StageFailure("stage '\(stageName)': could not start '\(command.executable)': \(error)")
        }
        self.process = process
        // Own raw copies; the pipes' handles close their descriptors when released.
        if let inputPipe {
            stdin = PipeIO.duplicate(inputPipe.fileHandleForWriting.fileDescriptor)
            try? inputPipe.fileHandleForWriting.close()
            PipeIO.setNonBlocking(stdin)
        }
        stdout = PipeIO.duplicate(outputPipe.fileHandleForReading.fileDescriptor)
        try? outputPipe.fileHandleForReading.close()
        PipeIO.setNonBlocking(stdout)
        stderr = PipeIO.duplicate(errorPipe.fileHandleForReading.fileDescriptor)
        try? errorPipe.fileHandleForReading.close()
        if nonBlockingStderr { PipeIO.setNonBlocking(stderr) }
    }

    deinit {
        terminate()
        closeStdin()
        closeStdout()
        closeStderr()
    }

    var processIdentifier: Int32 { process.processIdentifier }

    func closeStdin() {
        if stdin >= 0 { PipeIO.close(stdin) }
        stdin = -1
    }

    func closeStdout() {
        if stdout >= 0 { PipeIO.close(stdout) }
        stdout = -1
    }

    func closeStderr() {
        if stderr >= 0 { PipeIO.close(stderr) }
        stderr = -1
    }

    /// Gives up ownership of the standard error descriptor (to a reader thread that closes it).
    func takeStderr() -> Int32 {
        let fd = stderr
        stderr = -1
        return fd
    }

    /// Waits until the child has exited and been reaped, or `deadline` passes; true if it has.
    @discardableResult
    func waitForExit(until deadline: AttemptDeadline) -> Bool {
        if reaped { return true }
        let finished: Bool
        if let instant = deadline.instant {
            let left = ContinuousClock.now.duration(to: instant)
            let (seconds, attoseconds) = left.components
            let nanoseconds = max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            finished = exited.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .success
        } else {
            exited.wait()
            finished = true
        }
        if finished { reaped = true }
        return finished
    }

    /// Ends the child: SIGTERM, then SIGKILL after `grace`, and waits until it is reaped (no zombie).
    func terminate(grace: Duration = .milliseconds(500)) {
        if reaped { return }
        if waitForExit(until: AttemptDeadline(instant: .now)) { return }
        kill(process.processIdentifier, SIGTERM)
        if waitForExit(until: .after(grace)) { return }
        kill(process.processIdentifier, SIGKILL)
        // SIGKILL cannot be caught; the bound only guards against a reaper that never runs.
        waitForExit(until: .after(.seconds(10)))
    }

    /// How the child ended, for messages: "exited with status 3", "was killed by signal 9".
    var exitDescription: String {
        guard reaped else { return "is still running" }
        switch process.terminationReason {
        case .exit: return "exited with status \(process.terminationStatus)"
        case .uncaughtSignal: return "was killed by signal \(process.terminationStatus)"
        @unknown default: return "ended (status \(process.terminationStatus))"
        }
    }

    /// True if the child was reaped after exiting with status 0.
    var exitedSuccessfully: Bool {
        reaped && process.terminationReason == .exit && process.terminationStatus == 0
    }
}

@available(*, unavailable) extension ChildProcess: Sendable {}

/// The last bytes a child wrote on standard error, kept by a reader thread.
///
/// `@unchecked Sendable`: every field is read and written under `lock`.
final class StderrTail: @unchecked Sendable {
    static let capacity = 4096

    private let lock = NSLock()
    private var ring = [UInt8](repeating: 0, count: StderrTail.capacity)
    private var start = 0
    private var count = 0
    private let finished = DispatchSemaphore(value: 0)
    private var isFinished = false

    /// Starts a thread that reads `fd` until end of file, keeps its tail, then closes `fd`.
    static func reading(_ fd: Int32) -> StderrTail {
        let tail = StderrTail()
        let thread = Thread {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let result = chunk.withUnsafeMutableBytes { PipeIO.read(fd, into: $0) }
                guard case .bytes(let count) = result else { break }
                tail.append(chunk[0..<count])
            }
            PipeIO.close(fd)
            tail.finish()
        }
        thread.name = "lancompute.stderr"
        thread.start()
        return tail
    }

    init() {}

    func append<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        lock.lock()
        defer { lock.unlock() }
        for byte in bytes.suffix(StderrTail.capacity) {
            let end = (start + count) % StderrTail.capacity
            ring[end] = byte
            if count < StderrTail.capacity {
                count += 1
            } else {
                start = (start + 1) % StderrTail.capacity
            }
        }
    }

    private func finish() {
        lock.lock()
        isFinished = true
        lock.unlock()
        finished.signal()
    }

    /// Waits (at most until `deadline`) for the reader to reach end of file, so the tail is complete.
    func waitUntilFinished(until deadline: AttemptDeadline) {
        lock.lock()
        let done = isFinished
        lock.unlock()
        if done { return }
        let nanoseconds = Int(deadline.remainingMilliseconds()) * 1_000_000
        if finished.wait(timeout: .now() + .nanoseconds(max(0, nanoseconds))) == .success {
            finished.signal()  // Let later waiters through too.
        }
    }

    /// The kept tail as text (invalid UTF-8 replaced).
    var text: String {
        lock.lock()
        defer { lock.unlock() }
        var bytes = [UInt8]()
        bytes.reserveCapacity(count)
        for offset in 0..<count { bytes.append(ring[(start + offset) % StderrTail.capacity]) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
