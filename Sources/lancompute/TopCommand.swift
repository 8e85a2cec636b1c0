// `lancompute top`: a live terminal view of the stages and nodes of a running pipeline.

import ArgumentParser
import Foundation
import LANCompute

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch a pipeline live: stage rates, queues, in-flight items, p99 latency, nodes.",
        discussion: """
            On a terminal the view is redrawn in place at each snapshot; otherwise each snapshot \
            is printed as timestamped key=value lines, and each event as one line.
            """)

    @OptionGroup var discovery: DiscoverOptions

    @Argument(help: "The broker's events (PUB) endpoint (ignored with --discover).")
    var endpoint: String = "tcp://127.0.0.1:5556"

    @Flag(help: "Print one view and exit.")
    var once = false

    @Option(help: "With --once: fail when no snapshot arrives within SECONDS.")
    var timeout: Double = 5

    @OptionGroup var keys: ClientKeyOptions

    mutating func validate() throws {
        endpoint = Endpoint.expandingShorthand(endpoint, defaultPort: 5556)
        try checkEndpoint(endpoint, option: "ENDPOINT")
        checkResolves(endpoint)
    }

    func run() throws {
        let endpoint = discovery.discover ? discovery.eventsEndpoint(command: "top", curve: keys.curve) : self.endpoint
        let stop = StopRequest()
        stop.watch(signals: [SIGINT, SIGTERM])
        let interactive = isatty(STDOUT_FILENO) != 0 && !once
        let output = FileHandle.standardOutput
        let subscriber = try FeedSubscriber(endpoint: endpoint, curve: keys.curve)
        var view = TopView()

        if interactive { output.write(Data("\u{1B}[?25l\u{1B}[2J".utf8)) }  // hide the cursor, clear the screen
        defer { if interactive { output.write(Data("\u{1B}[?25h".utf8)) } }

        let clock = ContinuousClock()
        let giveUp = clock.now + .milliseconds(Int(timeout * 1000))
        if interactive { output.write(Data(view.ansiFrame().utf8)) }
        while !stop.isRequested {
            guard let message = try subscriber.next(timeout: .milliseconds(200)) else {
                if once && clock.now >= giveUp {
                    FileHandle.standardError.write(Data("lancompute top: no snapshot from \(endpoint) within \(timeout) s\n".utf8))
                    throw ExitCode(3)
                }
                continue
            }
            let isSnapshot = view.record(message)
            if once {
                guard isSnapshot else { continue }
                // The table is for a person at a terminal; a pipe or a file gets the key=value lines scripts parse.
                let lines = isatty(STDOUT_FILENO) != 0 ? view.render() : view.plainLines()
                output.write(Data(lines.map { $0 + "\n" }.joined().utf8))
                return
            }
            if interactive {
                if isSnapshot { output.write(Data(view.ansiFrame().utf8)) }
            } else {
                let lines = isSnapshot ? view.plainLines() : [TopView.eventSummary(message)]
                output.write(Data(lines.map { $0 + "\n" }.joined().utf8))
                if message.gap > 0 {
                    FileHandle.standardError.write(Data(
                        "lancompute top: \(message.gap) message(s) missed on \(message.topic)\n".utf8))
                }
            }
        }
    }
}
