// Runs the built binary's feed commands in tests, and serves a feed for them.

import Foundation
import LANCompute
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The built `lancompute` running one command, its output in temporary files.
final class FeedCommand {
    /// The binary under test: `LANCOMPUTE_BINARY` if set, else the one built next to the tests.
    static var binaryPath: String { ProcessInfo.processInfo.environment["LANCOMPUTE_BINARY"] ?? CLI.path }

    /// Whether the binary offers `events` (it may not, while the root command is elsewhere).
    static let eventsAvailable = offers("events", option: "--topic")
    /// Whether the binary offers `top`.
    static let topAvailable = offers("top", option: "--once")

    private static func offers(_ subcommand: String, option: String) -> Bool {
        guard let command = try? FeedCommand([subcommand, "--help"]) else { return false }
        defer { command.terminate() }
        command.waitForExit(timeout: .seconds(10))
        return command.exitStatus == 0 && command.output.contains(option)
    }

    let process = Process()
    private let outputURL: URL
    private let errorURL: URL

    init(_ arguments: [String]) throws {
        let unique = UUID().uuidString
        outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("feed-command-\(unique).out")
        errorURL = FileManager.default.temporaryDirectory.appendingPathComponent("feed-command-\(unique).err")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binaryPath)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }
    var errorOutput: String { (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "" }

    @discardableResult
    func waitForExit(timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning && clock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return !process.isRunning
    }

    /// Kills the command if it still runs and removes its files.
    func terminate() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            waitForExit(timeout: .seconds(5))
        }
        try? FileManager.default.removeItem(at: outputURL)
        try? FileManager.default.removeItem(at: errorURL)
    }

    static func makeFeed() throws -> (EventFeed, String) {
        let socket = try Socket(.xpub)
        try socket.bind("tcp://127.0.0.1:*")
        return (try EventFeed(socket: socket), try socket.lastEndpoint)
    }
}

extension EventFeed {
    /// Services subscriptions until one more has been seen (at most 20 s).
    func awaitSubscription() throws -> Bool {
        let seen = subscriptionsSeen
        try serviceSubscriptions(until: { self.subscriptionsSeen > seen }, timeout: .seconds(20))
        return subscriptionsSeen > seen
    }

    func serviceSubscriptions(for duration: Duration) throws {
        try serviceSubscriptions(until: { false }, timeout: duration)
    }

    private func serviceSubscriptions(until done: () -> Bool, timeout: Duration) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !done() && clock.now < deadline {
            if try socket.poll(.in, timeout: .milliseconds(5)).contains(.in) { handleSubscriptions() }
        }
    }
}
