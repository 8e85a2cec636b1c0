// `mmi.unserved`: a worker tells the broker which stages it does not serve, and why.

/// The body of an `mmi.unserved` request: the worker's node id, then a stage name and a reason per
/// stage it skipped. The broker answers `200` (`400` for a body that is not one).
public struct UnservedReport: Sendable, Equatable {
    public static let service = "mmi.unserved"

    public var node: String
    public var stages: [UnservedStage]

    public init(node: String, stages: [UnservedStage]) {
        self.node = node
        self.stages = stages
    }

    public var frames: [[UInt8]] {
        [Array(node.utf8)] + stages.flatMap { [Array($0.stage.utf8), Array($0.reason.utf8)] }
    }

    /// Parses a request body: an odd number of frames, the node and every stage name not empty, all UTF-8.
    public init(body: [[UInt8]]) throws(WireError) {
        guard let first = body.first, body.count % 2 == 1 else {
            throw WireError("an mmi.unserved body is the node and stage/reason pairs: an odd number of frames, got \(body.count)")
        }
        guard let node = String(validating: first, as: UTF8.self), !node.isEmpty else {
            throw WireError("the node frame of an mmi.unserved body is empty or not UTF-8")
        }
        var stages: [UnservedStage] = []
        for index in stride(from: 1, to: body.count, by: 2) {
            guard let stage = String(validating: body[index], as: UTF8.self), !stage.isEmpty,
                  let reason = String(validating: body[index + 1], as: UTF8.self) else {
                throw WireError("stage/reason pair \(index / 2 + 1) of an mmi.unserved body is empty or not UTF-8")
            }
            stages.append(UnservedStage(stage: stage, reason: reason))
        }
        self.init(node: node, stages: stages)
    }
}
