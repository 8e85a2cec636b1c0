// What of a topology leaves the broker: exec environment names without their values, and how a worker fills the values in locally.

import Foundation

extension Topology {
    /// The topology as `mmi.topology` sends it: every exec stage's `environment` keeps its names,
    /// each with an empty value. Values are often credentials; a worker takes them from its own
    /// machine instead (``withLocalEnvironment(_:)``), so they never cross the network.
    public func withoutEnvironmentValues() -> Topology {
        var copy = self
        for index in copy.stages.indices {
            guard case .exec(var exec) = copy.stages[index].handler else { continue }
            exec.environment = exec.environment.mapValues { _ in "" }
            copy.stages[index].handler = .exec(exec)
        }
        return copy
    }

    /// The topology with each exec stage's environment names given the values this machine has:
    /// `values[stage][name]` when given (the workers of `lancompute run`, which loaded the file
    /// themselves), else nothing, so the child inherits the variable from the worker's own
    /// environment, or goes without it.
    public func withLocalEnvironment(_ values: [String: [String: String]]) -> Topology {
        var copy = self
        for index in copy.stages.indices {
            guard case .exec(var exec) = copy.stages[index].handler else { continue }
            let local = values[copy.stages[index].name] ?? [:]
            var filled: [String: String] = [:]
            for name in exec.environment.keys { if let value = local[name] { filled[name] = value } }
            exec.environment = filled
            copy.stages[index].handler = .exec(exec)
        }
        return copy
    }

    /// Every exec stage's environment values, by stage: what `lancompute run` hands its own workers.
    public var environmentValues: [String: [String: String]] {
        var values: [String: [String: String]] = [:]
        for stage in stages {
            if case .exec(let exec) = stage.handler, !exec.environment.isEmpty { values[stage.name] = exec.environment }
        }
        return values
    }
}
