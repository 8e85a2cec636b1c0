// The `lancompute` root command: lists the subcommands, and names them when the first word is none of them.

import ArgumentParser
import LANCompute

@main
struct LANComputeCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "lancompute",
        abstract: "Turn the machines of a LAN into one pipeline engine, over ZeroMQ.",
        version: version,
        subcommands: [
            RunCommand.self, BrokerCommand.self, WorkerCommand.self, FeedCommand.self, EventsCommand.self, TopCommand.self,
            DashboardCommand.self, ValidateCommand.self, GraphCommand.self, DoctorCommand.self, NodeCommand.self, NodesCommand.self,
            KeygenCommand.self, KeysCommand.self, PairCommand.self,
        ]
    )

    static var subcommandNames: [String] { configuration.subcommands.map { $0._commandName } }

    /// The one-line error for a first word that is not a subcommand, or nil when it is one (or an option).
    /// The root command takes no arguments of its own, so any other word is a mistyped subcommand.
    static func unknownSubcommandError(_ arguments: [String]) -> String? {
        guard let word = arguments.first, !word.hasPrefix("-"), word != "help", !subcommandNames.contains(word) else { return nil }
        let hint = Suggestion.closest(to: word, among: subcommandNames).map { " (did you mean '\($0)'?)" } ?? ""
        return "error: unknown subcommand '\(word)'\(hint); the subcommands are \(subcommandNames.joined(separator: ", "))"
    }

    static func main() {
        if let problem = LibraryRequirement.problem() { fail(problem) }
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let message = unknownSubcommandError(arguments) { fail(message, code: ExitCode.validationFailure.rawValue) }
        main(HTTPOption.expandingBareHTTP(arguments))
    }
}
