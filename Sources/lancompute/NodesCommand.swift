// `lancompute nodes [EP]`: the cluster as the broker sees it, from its `mmi.nodes` service.

import ArgumentParser
import Foundation
import LANCompute

struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "List the nodes of a running pipeline: capabilities, stages served, items in flight and done.",
        discussion: "Asks the broker's dispatch endpoint (MMI service mmi.nodes); see Docs/cluster.md.")

    @OptionGroup var discovery: DiscoverOptions

    @Argument(help: "The broker's dispatch endpoint (ignored with --discover).")
    var endpoint: String = "tcp://127.0.0.1:5555"

    @Flag(help: "Print the broker's answer as JSON instead of a table.")
    var json = false

    @Option(help: "Fail when the broker does not answer within SECONDS.")
    var timeout: Double = 5

    @OptionGroup var keys: ClientKeyOptions

    mutating func validate() throws {
        endpoint = Endpoint.expandingShorthand(endpoint, defaultPort: 5555)
        try checkEndpoint(endpoint, option: "EP")
        checkResolves(endpoint)
        guard timeout > 0 && timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    func run() throws {
        let endpoint = discovery.discover ? discovery.find(command: "nodes", curve: keys.curve).dispatchEndpoint : self.endpoint
        let body: [[UInt8]]
        do {
            let client = try MDPClient(endpoint: endpoint, curve: keys.curve)
            defer { client.close() }
            guard let reply = try client.request("mmi.nodes", body: [], timeout: .milliseconds(Int(timeout * 1000))) else {
                fail(RuntimeError(.nodesNoAnswer, "the broker at \(endpoint) did not answer mmi.nodes within \(timeout) s; is a broker running there?"))
            }
            body = reply
        } catch {
            fail(RuntimeError(.nodesNoAnswer, "cannot ask the broker at \(endpoint) for mmi.nodes: \(error)"))
        }
        guard body.count == 2, body[0] == Array("200".utf8), let report = try? NodesReport(json: Data(body[1])) else {
            let status = body.first.map { String(decoding: $0, as: UTF8.self) } ?? "nothing"
            fail(RuntimeError(.nodesUnexpectedAnswer, "the broker at \(endpoint) answered mmi.nodes with \(status); is it a LANCompute broker of this version?"))
        }
        if json {
            FileHandle.standardOutput.write(try report.jsonData(pretty: true) + Data("\n".utf8))
            return
        }
        let lines = (report.nodes.isEmpty ? ["no nodes: no worker is registered with the broker of pipeline \(report.pipeline)"] : report.table())
            + report.unservedLines()
        FileHandle.standardOutput.write(Data(lines.map { $0 + "\n" }.joined().utf8))
    }
}
