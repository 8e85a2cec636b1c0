// Command-line options that override a topology's `broker:` settings, for commands that start a broker.

import ArgumentParser
import LANCompute

/// Shared by the commands that run a broker (`@OptionGroup var broker: BrokerOptions`).
/// Values are checked like the same keys in a topology file.
struct BrokerOptions: ParsableArguments {
    @Option(help: "Endpoint of the MDP ROUTER (overrides broker.bind).")
    var bind: String?

    @Option(help: "Endpoint of the events PUB socket (overrides broker.events).")
    var events: String?

    @Option(help: "Endpoint of the aggregator PULL socket (overrides broker.aggregator).")
    var aggregator: String?

    @Option(help: "Heartbeat interval, e.g. 500ms (overrides broker.heartbeat-interval).")
    var heartbeatInterval: String?

    @Option(help: "Heartbeats missed before a peer is dead (overrides broker.heartbeat-liveness).")
    var heartbeatLiveness: Int?

    @Option(help: "Items one stage may queue before the source pauses (overrides broker.queue-limit).")
    var queueLimit: Int?

    func validate() throws {
        for (name, endpoint) in [("--bind", bind), ("--events", events), ("--aggregator", aggregator)] {
            if let endpoint, let problem = Endpoint.problem(with: endpoint, use: .bind) {
                throw ValidationError("\(name): \(problem)")
            }
        }
        if let heartbeatInterval {
            guard let interval = DurationLiteral.parse(heartbeatInterval), interval > .zero else {
                throw ValidationError("--heartbeat-interval: '\(heartbeatInterval)' is not a duration such as 250ms or 2s")
            }
        }
        if let heartbeatLiveness, heartbeatLiveness < 1 {
            throw ValidationError("--heartbeat-liveness must be at least 1")
        }
        if let queueLimit, queueLimit < 1 {
            throw ValidationError("--queue-limit must be at least 1")
        }
    }

    /// `settings` with every option given on the command line taking precedence.
    func applied(to settings: BrokerSettings) -> BrokerSettings {
        var result = settings
        if let bind { result.bind = bind }
        if let events { result.events = events }
        if let aggregator { result.aggregator = aggregator }
        if let heartbeatInterval, let interval = DurationLiteral.parse(heartbeatInterval) {
            result.heartbeatInterval = interval
        }
        if let heartbeatLiveness { result.heartbeatLiveness = heartbeatLiveness }
        if let queueLimit { result.queueLimit = queueLimit }
        return result
    }
}
