// What the commands share: logging set-up, loading a topology for running, signals, number formatting.

import ArgumentParser
import Dispatch
import Foundation
import LANCompute
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options every long-running command takes.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level?

    func bootstrap(default level: Logger.Level) {
        let chosen = logLevel ?? ProcessInfo.processInfo.environment["LANCOMPUTE_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = chosen
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Throws a one-line usage error naming `option` when `endpoint` is not one LANCompute can use.
func checkEndpoint(_ endpoint: String, option: String, use: Endpoint.Use = .connect) throws {
    do {
        _ = try Endpoint(parsing: endpoint, use: use)
    } catch {
        throw ValidationError("\(option): \(error.problem)")
    }
}

/// Exits with LC2080 when `endpoint` is TCP to a host name that does not resolve: a typo, most
/// often, which retrying would never fix.
func checkResolves(_ endpoint: String) {
    guard let parsed = try? Endpoint(parsing: endpoint), let host = parsed.host, !parsed.isEveryInterface else { return }
    if let reason = Reachability.resolutionProblem(host: host) {
        fail(RuntimeError(.brokerUnresolved, "cannot resolve '\(host)' of \(endpoint): \(reason); check the name, give an address, or use --discover"))
    }
}

/// Prints one line to standard error and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("lancompute: \(message)\n".utf8))
    exit(code)
}

/// Prints `lancompute: error LCnnnn: message` to standard error and exits 1.
func fail(_ error: RuntimeError) -> Never {
    fail("error \(error)")
}

/// Loads a topology to run it: every problem printed as FILE:LINE:COLUMN (exit 1), paths resolved
/// against the file's directory (exec commands excepted: each worker resolves them on its own machine).
func loadTopologyForRun(_ path: String, input: String?, output: String?) -> Topology {
    var topology: Topology
    do {
        topology = try TopologyLoader.load(path: path)
    } catch {
        for diagnostic in error.diagnostics { FileHandle.standardError.write(Data("\(diagnostic.description)\n".utf8)) }
        exit(1)
    }
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let exec = topology.stages.map(\.handler)
    topology = topology.resolvingPaths(relativeTo: directory)
    for index in topology.stages.indices { topology.stages[index].handler = exec[index] }
    let cwd = FileManager.default.currentDirectoryPath
    if let input {
        topology.source.kind = .file(path: URL(fileURLWithPath: input, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardizedFileURL.path)
    }
    if let output {
        topology.sink.kind = .file(path: URL(fileURLWithPath: output, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardizedFileURL.path)
    }
    return topology
}

/// What `run` and `broker` say when a second signal cuts their drain short.
let drainCutNote = "stopping now: unfinished items go to the dead letters"

/// What SIGINT and SIGTERM do to a long-running command. The first calls `action` (stop taking
/// work, drain what is held); the second calls `again` if given, saying `againNote` (for `run`
/// and `broker`: end the drain at once, yet still write the sink, the dead letters and the
/// summary, so that nothing accepted goes unaccounted for); a third, or the second without
/// `again`, exits at once.
final class SignalTrap {
    private let sources: [DispatchSourceSignal]

    init(again: (@Sendable () -> Void)? = nil, againNote: String = "stopping at once", _ action: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "lancompute.signals")
        let count = Counter()
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                switch (count.increment(), again) {
                case (1, _):
                    let next = again == nil ? "again to quit at once" : "again to stop draining"
                    FileHandle.standardError.write(Data("\nlancompute: stopping: no new items; draining work in flight (\(next))\n".utf8))
                    action()
                case (2, let again?):
                    FileHandle.standardError.write(Data("\nlancompute: \(againNote) (again to quit at once)\n".utf8))
                    again()
                default:
                    exit(130)
                }
            }
            source.resume()
            return source
        }
    }

    final class Counter: @unchecked Sendable {
        // @unchecked Sendable: only touched on the serial signal queue.
        private var value = 0
        func increment() -> Int {
            value += 1
            return value
        }
    }
}


/// Set from a signal handler queue, read by a command's loop: `events` and `top` stop cleanly (exit 0)
/// on SIGINT or SIGTERM, since being stopped is how they normally end.
final class StopRequest: @unchecked Sendable {
    // @unchecked Sendable: `requested` is only touched while `lock` is held; `sources` only by `watch`, before any signal.
    private let lock = NSLock()
    private var requested = false
    private var sources: [DispatchSourceSignal] = []

    var isRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }

    /// Turns the signals into a stop request instead of killing the process, so the terminal is restored.
    func watch(signals: [Int32]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                lock.lock()
                requested = true
                lock.unlock()
            }
            source.resume()
            sources.append(source)
        }
    }
}

func formatCount(_ value: Int) -> String {
    let digits = String(value)
    var result = ""
    for (index, character) in digits.reversed().enumerated() {
        if index > 0 && index % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return String(result.reversed())
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The live progress line and the final summary of a run.
enum RunReport {
    static func progressLine(_ progress: RunProgress, pipeline: String) -> String {
        let elapsed = max(seconds(progress.elapsed), 0.001)
        let rate = Double(progress.processed) / elapsed
        var line = "[\(pipeline)] "
        if let total = progress.total {
            line += "\(formatCount(progress.processed))/\(formatCount(total)) items"
            if rate > 0 && progress.processed < total {
                line += " · ETA \(Int((Double(total - progress.processed) / rate).rounded(.up)))s"
            }
        } else {
            line += "\(formatCount(progress.processed)) items (\(formatCount(progress.read)) read)"
        }
        line += " · \(formatCount(Int(rate))) items/s"
        if progress.deadLettered > 0 { line += " · \(formatCount(progress.deadLettered)) dead-lettered" }
        return line
    }

    static func summary(_ summary: RunSummary, sink: SinkSpec) -> String {
        var lines: [String] = []
        lines.append("pipeline \(summary.pipeline)\(summary.interrupted ? " (interrupted)" : ""):")
        lines.append("  items in       \(formatCount(summary.itemsIn))")
        if summary.resumed { lines.append("  resumed        \(formatCount(summary.alreadyDone)) items finished by the earlier run, not done again") }
        lines.append("  items out      \(formatCount(summary.itemsOut))\(sinkDescription(sink))")
        lines.append("  dead-lettered  \(formatCount(summary.deadLettered))\(summary.deadLetterPath.map { " -> \($0)" } ?? "")")
        if summary.unfinished > 0 { lines.append("  unfinished     \(formatCount(summary.unfinished))") }
        lines.append(summary.wallSeconds < 1
            ? String(format: "  wall time      %.1f ms", summary.wallSeconds * 1000)
            : String(format: "  wall time      %.2f s", summary.wallSeconds))
        lines.append("  throughput     \(formatCount(Int(summary.itemsPerSecond))) items/s")
        lines.append(String(format: "  latency        p50 %.2f ms, p99 %.2f ms (source to sink)", summary.latencyP50Milliseconds, summary.latencyP99Milliseconds))
        if summary.protocolErrors > 0 { lines.append("  dropped frames \(formatCount(summary.protocolErrors)) (protocol errors)") }
        if summary.lateMessages > 0 {
            lines.append("  late replies   \(formatCount(summary.lateMessages)) ignored (from workers already given up on; their items were redelivered)")
        }
        if summary.inputLeft { lines.append("  input          not read to its end: the run was stopped (exit status 1)") }
        return lines.joined(separator: "\n")
    }

    static func sinkDescription(_ sink: SinkSpec) -> String {
        switch sink.kind {
        case .file(let path): " -> \(path)"
        case .stdout: " -> standard output"
        case .push(let endpoint): " -> \(endpoint)"
        }
    }
}
