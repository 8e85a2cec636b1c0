// `lancompute doctor`: what this machine offers LANCompute — libzmq, CURVE, interfaces, capabilities.

import ArgumentParser
import Foundation
import LANCompute
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this machine: libzmq version, CURVE support, network interfaces, worker capabilities.",
        discussion: """
            With --broker EP it also asks that broker for its topology and says, stage by stage, whether a worker \
            started here with the same --label, --workdir, --allow-exec and --cache would serve it, and why not. \
            It fetches the stage files into the cache as a worker would, and registers nothing.
            """
    )

    @Option(help: "A broker's dispatch endpoint: check it answers, and which of its stages this machine could serve.")
    var broker: String?

    @Option(name: .customLong("label"), help: "A K=V label a worker here would announce (repeatable).")
    var labels: [String] = []

    @Option(help: "The directory a worker here would run in (default: the current directory).")
    var workdir: String?

    @Option(name: .customLong("allow-exec"), help: "A worker's --allow-exec glob (repeatable).")
    var allowExec: [String] = []

    @Option(help: "Directory for stage files (default: ~/.lancompute/cache, or $LANCOMPUTE_HOME/cache).")
    var cache: String?

    @Option(help: "Seconds to wait for each of the broker's answers.")
    var timeout: Double = 5

    @OptionGroup var keys: ClientKeyOptions

    func validate() throws {
        if let broker { try checkEndpoint(broker, option: "--broker") }
        if timeout <= 0 { throw ValidationError("--timeout must be more than 0 seconds") }
        for label in labels where !label.contains("=") || label.hasPrefix("=") {
            throw ValidationError("--label takes K=V, got '\(label)'")
        }
    }

    func run() throws {
        print("lancompute \(LANComputeCommand.version)")
        print("libzmq      \(ZMQLibrary.versionString)")
        print("CURVE       \(ZMQLibrary.has("curve") ? "available" : "missing (libzmq built without libsodium: encryption unavailable)")")
        print("IPC         \(ZMQLibrary.has("ipc") ? "available" : "missing")")
        print("host        \(NodeInfo.hostName)")
        print("arch/os     \(NodeInfo.arch)/\(NodeInfo.os)")
        print("cores       \(NodeInfo.cores)")
        print(String(format: "memory      %.1f GiB", Double(NodeInfo.memory) / 1_073_741_824))
        print("gpu         \(NodeInfo.hasGPU ? "yes" : "none found")")
        print("allocator   \(Allocator.report)")
        print("interfaces:")
        for (name, address) in Self.interfaces() { print("  \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(address)") }
        // A loopback round trip proves the library works here, not just that it links.
        let pull = try Socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try Socket(.push)
        try push.connect(try pull.lastEndpoint)
        try push.send("ping")
        try pull.set(.receiveTimeout, .seconds(2))
        let reply = try pull.receiveString()
        print("loopback    \(reply == "ping" ? "ok" : "FAILED") (\(try pull.lastEndpoint))")
        if let broker { checkBroker(broker) }
    }

    /// Whether `endpoint` answers, and which of its stages a worker here would serve (the worker's own checks).
    private func checkBroker(_ endpoint: String) {
        var labelValues: [String: String] = [:]
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            labelValues[String(parts[0])] = String(parts[1])
        }
        var configuration = WorkerConfiguration(
            brokerEndpoint: endpoint, labels: labelValues,
            workingDirectory: workdir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? FileManager.default.currentDirectoryPath)
        configuration.stageFileCache = cache.map { StageFileCache(directory: URL(fileURLWithPath: $0).standardizedFileURL.path) } ?? .userDefault
        if !allowExec.isEmpty { configuration.execPolicy = ExecPolicy(patterns: allowExec) }
        let wait = Duration.milliseconds(Int(timeout * 1000))
        do {
            let client = try MDPClient(endpoint: endpoint, curve: keys.curve)
            defer { client.close() }
            let (pipeline, verdicts) = try ServabilityCheck.run(configuration: configuration) { service, body in
                try client.request(service, body: body, timeout: wait)
            }
            print("broker      \(endpoint): answers, pipeline \(pipeline), \(verdicts.count) stage(s)")
            let width = max(8, verdicts.map(\.stage.count).max() ?? 0)
            for verdict in verdicts {
                let name = verdict.stage.padding(toLength: width, withPad: " ", startingAt: 0)
                print("  \(name)  \(verdict.reason.map { "cannot serve here: \($0)" } ?? "can serve here")")
            }
        } catch let error as RuntimeError {
            fail(error)
        } catch {
            fail(RuntimeError(.brokerUnreachable, "cannot ask the broker at \(endpoint): \(error)"))
        }
    }

    /// IPv4 and IPv6 addresses of the machine's interfaces.
    static func interfaces() -> [(String, String)] {
        var result: [(String, String)] = []
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0 else { return result }
        defer { freeifaddrs(first) }
        var cursor = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let name = String(cString: entry.pointee.ifa_name)
            result.append((name, String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        return result
    }
}
