// `lancompute node`: this machine's fingerprint as JSON, as a worker here would announce it.

import ArgumentParser
import Foundation
import LANCompute

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Print this machine's fingerprint (hardware, OS, load, GPUs, speed) as JSON.",
        discussion: """
            The fields are described in Docs/cluster.md. A worker announces the same facts to the broker \
            as capabilities, which stages' 'requires' and 'prefers' match.
            """)

    @Option(name: .customLong("label"), help: "A K=V label to include, as `worker --label` would announce it (repeatable).")
    var labels: [String] = []

    @Option(help: "Directory whose free disk space is reported (default: the current directory).")
    var workdir: String?

    @Flag(help: "Skip the speed benchmark (about 100 ms).")
    var noBenchmark = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        for label in labels where !label.contains("=") || label.hasPrefix("=") {
            throw ValidationError("--label takes K=V, got '\(label)'")
        }
    }

    func run() throws {
        logging.bootstrap(default: .warning)
        var labelValues: [String: String] = [:]
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            labelValues[String(parts[0])] = String(parts[1])
        }
        let directory = workdir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? FileManager.default.currentDirectoryPath
        let fingerprint = Fingerprint.detect(workingDirectory: directory, labels: labelValues, benchmark: !noBenchmark)
        FileHandle.standardOutput.write(try fingerprint.jsonData() + Data("\n".utf8))
    }
}
