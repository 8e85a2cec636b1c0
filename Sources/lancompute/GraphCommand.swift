// `lancompute graph FILE`: prints a topology's pipeline as a Graphviz or Mermaid graph.

import ArgumentParser
import Foundation
import LANCompute

extension TopologyGraph.Format: ExpressibleByArgument {}

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Print a topology's pipeline as a graph.",
        discussion: """
            Nodes are the source, each stage (with its handler, replicas and requirements) and the sink. \
            Render DOT with e.g. 'lancompute graph t.yaml | dot -Tsvg > t.svg'; paste Mermaid into Markdown.
            """
    )

    @Argument(help: "The topology file.")
    var file: String

    @Option(help: "Output format: dot or mermaid.")
    var format: TopologyGraph.Format = .dot

    func run() throws {
        do {
            let topology = try TopologyLoader.load(path: file)
            print(TopologyGraph.render(topology, format: format), terminator: "")
        } catch {
            for diagnostic in error.diagnostics {
                print(diagnostic.description)
            }
            throw ExitCode(1)
        }
    }
}
