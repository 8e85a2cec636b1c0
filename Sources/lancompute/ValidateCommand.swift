// `lancompute validate FILE...`: checks topology files and prints every problem at its position.

import ArgumentParser
import Foundation
import LANCompute

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check topology files without running them.",
        discussion: """
            Prints 'FILE: ok' for each valid file. For an invalid one, prints every problem on its own \
            line as FILE:LINE:COLUMN: error LCnnnn: message (codes in Docs/errors.md) and exits with 1.
            """
    )

    @Argument(help: "Topology files to check.")
    var files: [String]

    func run() throws {
        var valid = true
        for file in files {
            do {
                _ = try TopologyLoader.load(path: file)
                print("\(file): ok")
            } catch {
                valid = false
                for diagnostic in error.diagnostics {
                    print(diagnostic.description)
                }
            }
        }
        if !valid { throw ExitCode(1) }
    }
}
