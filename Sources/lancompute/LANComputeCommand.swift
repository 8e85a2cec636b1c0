// The `lancompute` root command: lists the subcommands.

import ArgumentParser

@main
struct LANComputeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lancompute",
        abstract: "Turn the machines of a LAN into one pipeline engine, over ZeroMQ.",
        subcommands: [ValidateCommand.self, GraphCommand.self]
    )
}
