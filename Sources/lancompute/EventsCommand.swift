// `lancompute events`: prints the broker's feed, one JSON line per message.

import ArgumentParser
import Foundation
import LANCompute

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the broker's metrics and events feed, one JSON object per line.",
        discussion: """
            Each line is the message's JSON object with its topic added as "topic". \
            Messages lost on the way (seen as a jump in a topic's "seq") are reported on standard error.
            """)

    @OptionGroup var discovery: DiscoverOptions

    @Argument(help: "The broker's events (PUB) endpoint (ignored with --discover).")
    var endpoint: String = "tcp://127.0.0.1:5556"

    @Option(help: "Only topics starting with PREFIX, e.g. metrics, event., event.node.")
    var topic: String = ""

    @Option(help: "Stop after N messages.")
    var count: Int?

    @Option(help: "Fail when no message arrives for SECONDS.")
    var timeout: Double?

    func validate() throws {
        try checkEndpoint(endpoint, option: "ENDPOINT")
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let endpoint = discovery.discover ? discovery.eventsEndpoint(command: "events") : self.endpoint
        let subscriber = try FeedSubscriber(endpoint: endpoint, topicPrefix: topic)
        let standardOutput = FileHandle.standardOutput
        let standardError = FileHandle.standardError
        let wait: Duration = timeout.map { .milliseconds(Int($0 * 1000)) } ?? .seconds(3600)
        var printed = 0
        while count.map({ printed < $0 }) ?? true {
            guard let message = try subscriber.next(timeout: wait) else {
                if let timeout {
                    standardError.write(Data("lancompute events: no message from \(endpoint) within \(timeout) s\n".utf8))
                    throw ExitCode(3)
                }
                continue
            }
            if message.gap > 0 {
                standardError.write(Data(
                    "lancompute events: \(message.gap) message(s) missed on \(message.topic) before seq \(message.seq)\n".utf8))
            }
            standardOutput.write(Data((message.jsonLineWithTopic + "\n").utf8))
            printed += 1
        }
    }
}
