// The `lancompute` root command: lists the subcommands.

import ArgumentParser

@main
struct LANComputeCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "lancompute",
        abstract: "Turn the machines of a LAN into one pipeline engine, over ZeroMQ.",
        version: version,
        subcommands: [
            RunCommand.self, BrokerCommand.self, WorkerCommand.self, FeedCommand.self, EventsCommand.self, TopCommand.self,
            ValidateCommand.self, GraphCommand.self, DoctorCommand.self, NodeCommand.self, NodesCommand.self,
        ]
    )
}
