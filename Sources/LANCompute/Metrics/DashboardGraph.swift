// The pipeline drawn for the dashboard: a layered layout of source, stages and sink, as inline SVG.

import Foundation

/// A topology's stages and edges, laid out in columns (the longest path from the source decides a
/// stage's column), and the SVG the page shows. The page fills in the live figures: every stage's
/// box has text elements with ids `stage-<index>-<field>` (`rate`, `queued`, `in_flight`,
/// `failed`, `dead_lettered`) and its group the class `stage` and id `stage-<index>`. A chain is a
/// dashed `rect.chain` around its members, and the edges inside it have the class `chained`.
public struct DashboardGraph: Sendable, Equatable {
    public let pipeline: String
    public let stages: [String]
    /// By node index: -1 is the source, `stages.count` the sink.
    public let edges: [Edge]
    /// The chains (stages a worker runs in one slot, head first), by stage index.
    public let chains: [[Int]]
    /// The broker's heartbeat interval: a node unheard for two of them is shown late.
    public let heartbeatMilliseconds: Int

    public struct Edge: Sendable, Equatable {
        public let from: Int
        public let to: Int
    }

    static let boxWidth = 210
    static let boxHeight = 76
    static let columnGap = 60
    static let rowGap = 24
    static let margin = 8

    public init(topology: Topology) {
        pipeline = topology.name
        stages = topology.stages.map(\.name)
        edges = TopologyGraph.edges(topology).map { Edge(from: $0.from, to: $0.to) }
        let index = Dictionary(topology.stages.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        chains = ChainPlan(topology).chains.map { $0.compactMap { index[$0] } }
        let interval = topology.broker.heartbeatInterval.components
        heartbeatMilliseconds = Int(interval.seconds * 1000 + interval.attoseconds / 1_000_000_000_000_000)
    }

    /// Whether `edge` joins two members of one chain (no broker round trip between them).
    func isChained(_ edge: Edge) -> Bool {
        chains.contains { chain in
            guard let position = chain.firstIndex(of: edge.from), position + 1 < chain.count else { return false }
            return chain[position + 1] == edge.to
        }
    }

    /// Each node's column: the source is 0, a stage one more than its furthest upstream, the sink last.
    var columns: [Int: Int] {
        var column: [Int: Int] = [-1: 0]
        // Stages may list a downstream stage before its upstream: relax until nothing moves
        // (at most one pass per stage, since the loader refuses cycles).
        for _ in 0...stages.count {
            var changed = false
            for edge in edges where edge.to < stages.count {
                let candidate = (column[edge.from] ?? 0) + 1
                if candidate > column[edge.to] ?? 0 {
                    column[edge.to] = candidate
                    changed = true
                }
            }
            if !changed { break }
        }
        for index in stages.indices where column[index] == nil { column[index] = 1 }
        column[stages.count] = (stages.indices.compactMap { column[$0] }.max() ?? 0) + 1
        return column
    }

    /// Top-left corner of each node's box.
    var positions: [Int: (x: Int, y: Int)] {
        let columns = columns
        var rowsUsed: [Int: Int] = [:]
        var result: [Int: (x: Int, y: Int)] = [:]
        for node in [-1] + Array(stages.indices) + [stages.count] {
            let column = columns[node] ?? 0
            let row = rowsUsed[column, default: 0]
            rowsUsed[column] = row + 1
            result[node] = (Self.margin + column * (Self.boxWidth + Self.columnGap),
                            Self.margin + row * (Self.boxHeight + Self.rowGap))
        }
        return result
    }

    /// The graph as an SVG element, sized to fit.
    public var svg: String {
        let positions = positions
        let width = (positions.values.map(\.x).max() ?? 0) + Self.boxWidth + Self.margin
        let height = (positions.values.map(\.y).max() ?? 0) + Self.boxHeight + Self.margin
        var svg = "<svg class=\"graph\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"pipeline \(Self.escape(pipeline))\">"
        svg += "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" class=\"arrowhead\"/></marker></defs>"
        // Behind everything: a dashed outline around each chain's boxes.
        for chain in chains {
            let boxes = chain.compactMap { positions[$0] }
            guard let left = boxes.map(\.x).min(), let top = boxes.map(\.y).min(),
                  let right = boxes.map(\.x).max(), let bottom = boxes.map(\.y).max() else { continue }
            let pad = Self.margin - 2
            let names = chain.map { Self.escape(stages[$0]) }.joined(separator: " &gt; ")
            svg += "<rect class=\"chain\" data-chain=\"\(names)\" x=\"\(left - pad)\" y=\"\(top - pad)\" width=\"\(right - left + Self.boxWidth + 2 * pad)\" height=\"\(bottom - top + Self.boxHeight + 2 * pad)\" rx=\"10\"><title>chain: \(names) (one worker runs them in one slot)</title></rect>"
        }
        for edge in edges {
            guard let from = positions[edge.from], let to = positions[edge.to] else { continue }
            let x1 = from.x + Self.boxWidth, y1 = from.y + Self.boxHeight / 2
            let x2 = to.x, y2 = to.y + Self.boxHeight / 2
            let bend = (x2 - x1) / 2
            svg += "<path class=\"\(isChained(edge) ? "edge chained" : "edge")\" marker-end=\"url(#arrow)\" d=\"M\(x1),\(y1)C\(x1 + bend),\(y1) \(x2 - bend),\(y2) \(x2),\(y2)\"/>"
        }
        for node in [-1] + Array(stages.indices) + [stages.count] {
            guard let position = positions[node] else { continue }
            svg += "<g transform=\"translate(\(position.x),\(position.y))\" "
            if node == -1 || node == stages.count {
                let name = node == -1 ? "source" : "sink"
                svg += "class=\"endpoint\" id=\"\(name)\"><rect width=\"\(Self.boxWidth)\" height=\"\(Self.boxHeight)\" rx=\"38\"/>"
                svg += "<text x=\"\(Self.boxWidth / 2)\" y=\"\(Self.boxHeight / 2 + 5)\" text-anchor=\"middle\" class=\"name\">\(name)</text></g>"
                continue
            }
            let id = "stage-\(node)"
            svg += "class=\"stage\" id=\"\(id)\" data-stage=\"\(Self.escape(stages[node]))\"><rect width=\"\(Self.boxWidth)\" height=\"\(Self.boxHeight)\" rx=\"6\"/>"
            svg += "<text x=\"10\" y=\"20\" class=\"name\">\(Self.escape(stages[node]))</text>"
            svg += "<text x=\"10\" y=\"42\" class=\"figures\"><tspan id=\"\(id)-rate\">0</tspan>/s · queued <tspan id=\"\(id)-queued\">0</tspan> · in flight <tspan id=\"\(id)-in_flight\">0</tspan></text>"
            svg += "<text x=\"10\" y=\"62\" class=\"figures\">failed <tspan id=\"\(id)-failed\">0</tspan> · dead <tspan id=\"\(id)-dead_lettered\">0</tspan><tspan id=\"\(id)-backpressure\" class=\"backpressure\"></tspan></text></g>"
        }
        return svg + "</svg>"
    }

    /// What the page receives: `pipeline`, `stages`, `edges` (pairs of node indices) and `svg`.
    var jsonText: JSONText {
        .object([
            ("pipeline", .string(pipeline)),
            ("stages", .array(stages.map(JSONText.string))),
            ("edges", .array(edges.map { .array([.int($0.from), .int($0.to)]) })),
            ("chains", .array(chains.map { .array($0.map(JSONText.int)) })),
            ("heartbeat_ms", .int(heartbeatMilliseconds)),
            ("svg", .string(svg)),
        ])
    }

    /// Text and attribute values in SVG (XML): the five characters that could end them.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
