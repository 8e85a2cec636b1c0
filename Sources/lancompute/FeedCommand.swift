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
        discussion: "Each line becomes one item. Waits until every line has been handed to the broker's connection before exiting."
    )

    @Argument(help: "The broker's source endpoint, e.g. tcp://head:5560.")
    var endpoint: String

    @Argument(help: "A file of lines (default: standard input).")
    var file: String?

    @Option(help: "Seconds to wait for the broker to take the last lines before giving up.")
    var timeout: Double = 30

    func run() throws {
        guard let input = file.map({ fopen($0, "rb") }) ?? fdopen(0, "rb") else {
            fail("error LC2021: cannot open \(file ?? "standard input"): \(String(cString: strerror(errno)))")
        }
        defer { fclose(input) }
        let push = try Socket(.push)
        try push.set(.linger, .milliseconds(Int(timeout * 1000)))
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
        push.close()
        FileHandle.standardError.write(Data("fed \(formatCount(sent)) lines to \(endpoint)\n".utf8))
    }
}
