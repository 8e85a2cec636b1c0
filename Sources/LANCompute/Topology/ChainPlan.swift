// Which linear runs of stages run as one chain inside the worker that took the item, decided once from the topology.

/// Why two stages joined by an edge do not run as one chain.
public enum ChainBoundary: Sendable, Equatable, CustomStringConvertible {
    /// `chain: false` on this stage.
    case optedOut(stage: String)
    /// The upstream stage feeds more than one stage.
    case fanOut(stage: String)
    /// The downstream stage reads more than one stage.
    case fanIn(stage: String)
    /// The downstream stage has `group-by`: its items are pinned to workers by key, in the broker.
    case groupBy(stage: String)
    /// The downstream stage has a `deadline`, which the broker enforces while the item waits in its queue.
    case deadline(stage: String)
    /// An external stage is served by MDP workers of its own.
    case external(stage: String)
    /// `requires`, `prefers` or `spread` differ: one worker may not fit both, or the broker would
    /// place the chain's items by the head's rule alone.
    case placement
    /// A fast builtin next to a blocking one (sleep, exec, Swift): they run on different threads.
    case cost
    /// Different `replicas`, so different slot counts.
    case replicas
    /// Different `credit`.
    case credit
    /// One has a `timeout` and the other not: a chain's attempt has one timeout, their sum.
    case timeout

    public var description: String {
        switch self {
        case .optedOut(let stage): "stage \(stage) has chain: false"
        case .fanOut(let stage): "stage \(stage) feeds more than one stage"
        case .fanIn(let stage): "stage \(stage) reads more than one stage"
        case .groupBy(let stage): "stage \(stage) has group-by"
        case .deadline(let stage): "stage \(stage) has a deadline"
        case .external(let stage): "stage \(stage) is external (served by MDP workers)"
        case .placement: "their requires, prefers or spread differ"
        case .cost: "one is a fast builtin and the other not"
        case .replicas: "their replicas differ"
        case .credit: "their credit differs"
        case .timeout: "one has a timeout and the other not"
        }
    }
}

/// The chains of a topology: maximal linear runs of two or more stages, each run inside one worker slot.
///
/// Stage B chains onto stage A when B's only input is A, A's only consumer is B, neither has
/// `chain: false`, B has neither `group-by` nor `deadline` (the broker applies both while an item
/// waits in B's queue, and a chained stage has none), neither is external, and they run the same way
/// in a worker: the same `requires`, `prefers`, `spread`, `replicas`, `credit`, cost (fast builtin or not) and
/// timeout presence. The head of a chain may have `group-by` and a `deadline`: its items are queued.
public struct ChainPlan: Sendable, Equatable {
    /// Each chain's stage names, head first.
    public var chains: [[String]]
    /// Edges between two stages that do not chain, and why, in stage order.
    public var boundaries: [(upstream: String, downstream: String, reason: ChainBoundary)]

    public init(_ topology: Topology) {
        let stages = topology.stages
        var index: [String: Int] = [:]
        for (position, stage) in stages.enumerated() where index[stage.name] == nil { index[stage.name] = position }
        var consumers = [Int](repeating: 0, count: stages.count)
        for stage in stages { for name in stage.from { if let upstream = index[name] { consumers[upstream] += 1 } } }
        var next = [Int?](repeating: nil, count: stages.count)
        var previous = [Int?](repeating: nil, count: stages.count)
        var boundaries: [(upstream: String, downstream: String, reason: ChainBoundary)] = []
        for (position, stage) in stages.enumerated() {
            for name in stage.from {
                guard let upstream = index[name] else { continue }
                if let reason = Self.boundary(stages[upstream], stage, upstreamConsumers: consumers[upstream]) {
                    boundaries.append((upstream: name, downstream: stage.name, reason: reason))
                } else {
                    next[upstream] = position
                    previous[position] = upstream
                }
            }
        }
        var chains: [[String]] = []
        for position in stages.indices where previous[position] == nil && next[position] != nil {
            var run = [stages[position].name]
            var at = position
            while let following = next[at], run.count <= stages.count {
                run.append(stages[following].name)
                at = following
            }
            chains.append(run)
        }
        self.chains = chains
        self.boundaries = boundaries
    }

    /// Why `downstream` does not chain onto `upstream`, or nil when it does.
    static func boundary(_ upstream: StageSpec, _ downstream: StageSpec, upstreamConsumers: Int) -> ChainBoundary? {
        if !upstream.chain { return .optedOut(stage: upstream.name) }
        if !downstream.chain { return .optedOut(stage: downstream.name) }
        if upstreamConsumers > 1 { return .fanOut(stage: upstream.name) }
        if downstream.from.count > 1 { return .fanIn(stage: downstream.name) }
        if downstream.groupBy != nil { return .groupBy(stage: downstream.name) }
        if downstream.deadline != nil { return .deadline(stage: downstream.name) }
        if upstream.handler == .external { return .external(stage: upstream.name) }
        if downstream.handler == .external { return .external(stage: downstream.name) }
        if upstream.requires != downstream.requires || upstream.prefers != downstream.prefers || upstream.spread != downstream.spread {
            return .placement
        }
        if StageHandlers.cost(of: upstream) != StageHandlers.cost(of: downstream) { return .cost }
        if upstream.replicas != downstream.replicas { return .replicas }
        if upstream.credit != downstream.credit { return .credit }
        if (upstream.timeout == nil) != (downstream.timeout == nil) { return .timeout }
        return nil
    }

    /// The chain `stage` belongs to, head first; nil when it runs alone.
    public func chain(containing stage: String) -> [String]? {
        chains.first { $0.contains(stage) }
    }

    /// A chain as people read it: `parse > lower > count`.
    public static func describe(_ chain: [String]) -> String { chain.joined(separator: " > ") }

    public static func == (lhs: ChainPlan, rhs: ChainPlan) -> Bool {
        lhs.chains == rhs.chains
            && lhs.boundaries.elementsEqual(rhs.boundaries) { $0.upstream == $1.upstream && $0.downstream == $1.downstream && $0.reason == $1.reason }
    }
}
