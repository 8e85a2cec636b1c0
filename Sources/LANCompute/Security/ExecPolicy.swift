// `worker --allow-exec PATTERN`: which programs any broker may make this worker run.

import Foundation

/// The programs a worker lets a broker's exec stages run; nil patterns: any program.
///
/// A pattern is a shell glob (`fnmatch`). One with a `/` is matched against the program's resolved
/// absolute path (the file that would be executed, `..` and symbolic links resolved), with `*`
/// not crossing a `/`: `/opt/thumbs/bin/*` allows the programs in that directory and nothing
/// below it. One without a `/` is matched against the resolved program's file name: `ffmpeg`
/// allows `ffmpeg` wherever `PATH` finds it. Only the program is checked, never its arguments:
/// allowing an interpreter (`python3`, `sh`) allows whatever code the broker passes to it.
public struct ExecPolicy: Sendable, Equatable {
    public let patterns: [String]?

    public init(patterns: [String]?) { self.patterns = patterns }

    public static let anyProgram = ExecPolicy(patterns: nil)

    /// Nil when `executable` (the absolute path the command resolved to) is allowed, else why not.
    public func refusal(executable: String) -> String? {
        guard let patterns else { return nil }
        let resolved = URL(fileURLWithPath: executable).resolvingSymlinksInPath().standardizedFileURL.path
        let name = (resolved as NSString).lastPathComponent
        for pattern in patterns {
            if pattern.contains("/") {
                if fnmatch(pattern, resolved, FNM_PATHNAME) == 0 || fnmatch(pattern, executable, FNM_PATHNAME) == 0 { return nil }
            } else if fnmatch(pattern, name, 0) == 0 {
                return nil
            }
        }
        return "\(resolved) matches no --allow-exec pattern (\(patterns.joined(separator: ", ")))"
    }

    /// Nil when `stage` may run here, else why not: a builtin or Swift stage always may; an exec
    /// stage when its program resolves and matches.
    func refusal(stage: StageSpec, workingDirectory: String) -> String? {
        guard patterns != nil, case .exec(let exec) = stage.handler else { return nil }
        switch ResolvedCommand.resolve(exec, stageName: stage.name, workerDirectory: workingDirectory) {
        case .success(let command): return refusal(executable: command.executable).map { "stage '\(stage.name)': \($0)" }
        case .failure(let failure): return failure.message
        }
    }
}
