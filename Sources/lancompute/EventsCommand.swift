// `lancompute events`: prints the broker's feed, one JSON line per message.

import ArgumentParser
import Foundation
import LANCompute

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the broker's metrics and events feed, one JSON object per line.",
        discussion: """
            Each line is the message's JSON object with its topic added as "topic". \
            Messages lost on the way (seen as a jump in a topic's "seq") are reported on standard error. \
            SIGINT or SIGTERM stops it cleanly, with exit status 0.
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

    @OptionGroup var keys: ClientKeyOptions

    mutating func validate() throws {
        endpoint = Endpoint.expandingShorthand(endpoint, defaultPort: 5556)
        try checkEndpoint(endpoint, option: "ENDPOINT")
        checkResolves(endpoint)
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let endpoint = discovery.discover ? discovery.eventsEndpoint(command: "events", curve: keys.curve) : self.endpoint
        let stop = StopRequest()
        stop.watch(signals: [SIGINT, SIGTERM])
        let subscriber = try FeedSubscriber(endpoint: endpoint, topicPrefix: topic, curve: keys.curve)
        let standardOutput = FileHandle.standardOutput
        let standardError = FileHandle.standardError
        let clock = ContinuousClock()
        let silence: Duration? = timeout.map { .milliseconds(Int($0 * 1000)) }
        var lastMessage = clock.now
        var printed = 0
        // Short waits, so a stop request is seen within 200 ms however quiet the feed is.
        while !stop.isRequested && count.map({ printed < $0 }) ?? true {
            guard let message = try subscriber.next(timeout: .milliseconds(200)) else {
                if let silence, let timeout, clock.now - lastMessage >= silence {
                    standardError.write(Data("lancompute events: no message from \(endpoint) within \(timeout) s\n".utf8))
                    throw ExitCode(3)
                }
                continue
            }
            lastMessage = clock.now
            if message.gap > 0 {
                standardError.write(Data(
                    "lancompute events: \(message.gap) message(s) missed on \(message.topic) before seq \(message.seq)\n".utf8))
            }
            standardOutput.write(Data((message.jsonLineWithTopic + "\n").utf8))
            printed += 1
        }
    }
}
