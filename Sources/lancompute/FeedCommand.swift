// `lancompute feed EP [FILE]`: pushes lines into a running broker whose source is `pull`.

import ArgumentParser
import Foundation
import LANCompute
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct FeedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Push lines (from FILE or standard input) into a broker whose source is 'pull: ENDPOINT'.",
        discussion: """
            Each line becomes one item. With --broker (the broker's dispatch endpoint), feed waits until \
            the broker confirms it accepted every line, and exits 0 only then; without it, delivery is \
            handed to the connection and not confirmed.
            """
    )

    @Argument(help: "The broker's source endpoint, e.g. tcp://head:5560 (omitted with --discover).")
    var endpoint: String?

    @Argument(help: "A file of lines (default: standard input).")
    var file: String?

    @Option(help: "The broker's dispatch endpoint, to confirm every line was accepted (e.g. tcp://head:5555).")
    var broker: String?

    @Option(help: "Seconds to wait for the broker to take the lines (and to confirm them).")
    var timeout: Double = 30

    @OptionGroup var discovery: DiscoverOptions

    func validate() throws {
        if !discovery.discover { try checkEndpoint(endpoint ?? "", option: "ENDPOINT") }
        if let broker { try checkEndpoint(broker, option: "--broker") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let (endpoint, broker, file) = discovery.discover
            ? discovery.feedEndpoints(positional: self.endpoint, file: self.file) : (self.endpoint ?? "", self.broker, self.file)
        guard let input = file.map({ fopen($0, "rb") }) ?? fdopen(0, "rb") else {
            fail("error LC2021: cannot open \(file ?? "standard input"): \(String(cString: strerror(errno)))")
        }
        defer { fclose(input) }
        let push = try SocketFactory().socket(.feeder)
        do {
            try push.connect(endpoint)
        } catch {
            fail("error LC2022: cannot connect to \(endpoint): \(error.code.message)")
        }
        try push.set(.sendTimeout, .milliseconds(Int(timeout * 1000)))
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var sent = 0
        while true {
            let length = getline(&line, &capacity, input)
            if length < 0 { break }
            var count = length
            if count > 0, line![count - 1] == 0x0A { count -= 1 }
            if count > 0, line![count - 1] == 0x0D { count -= 1 }
            do {
                try push.send(UnsafeRawBufferPointer(start: line, count: count))
            } catch {
                fail("error LC2023: the broker at \(endpoint) took no more lines for \(Int(timeout)) s after \(sent) lines: \(error.code.message)")
            }
            sent += 1
        }
        guard let broker else {
            // Unconfirmed: give the connection time to hand over what is queued.
            try push.set(.linger, .milliseconds(Int(timeout * 1000)))
            push.close()
            FileHandle.standardError.write(Data("fed \(formatCount(sent)) lines to \(endpoint) (not confirmed: pass --broker to confirm)\n".utf8))
            return
        }
        let id = UUID().uuidString
        do {
            try push.send(multipart: [FeedMarker.end, Array("\(id) \(sent)".utf8)])
        } catch {
            fail("error LC2023: the broker at \(endpoint) did not take the end of the feed: \(error.code.message)")
        }
        let accepted = try confirm(id: id, broker: broker)
        push.close()
        guard accepted == sent else {
            fail("error LC2024: the broker accepted \(accepted) of the \(sent) lines sent")
        }
        FileHandle.standardError.write(Data("fed \(formatCount(sent)) lines to \(endpoint); the broker accepted all of them\n".utf8))
    }

    /// Asks the broker (MMI service `mmi.feed`) until it has seen this feed's end marker.
    private func confirm(id: String, broker: String) throws -> Int {
        let client: MDPClient
        do {
            client = try MDPClient(endpoint: broker)
        } catch {
            fail("error LC2022: cannot connect to \(broker): \(error.code.message)")
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            // 404 until the broker has read the end marker; 200 and the count after.
            if let reply = try? client.request("mmi.feed", body: [Array(id.utf8)], timeout: .milliseconds(500)),
               reply.count == 2, reply[0] == Array("200".utf8),
               let count = Int(String(decoding: reply[1], as: UTF8.self)) {
                return count
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        fail("error LC2024: the broker at \(broker) did not confirm the feed within \(Int(timeout)) s")
    }
}
