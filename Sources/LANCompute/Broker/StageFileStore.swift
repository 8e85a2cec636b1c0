// The files the broker ships to workers: those under the topology's directory that an exec stage's command names, by SHA-256.

import Foundation

/// What the broker serves on `mmi.file`: read once at start, so every worker of a run gets the same
/// bytes, and nothing outside the set collected here can ever be asked for (a request names a
/// digest, never a path).
struct StageFileStore {
    /// The files of each exec stage, by stage name: the manifest `mmi.topology` carries.
    private(set) var manifest: [String: [StageFile]] = [:]
    private var contents: [String: [UInt8]] = [:]
    /// Why a file a command names is not shipped (too large, outside the directory, unreadable).
    private(set) var warnings: [String] = []

    init() {}

    /// Collects the files of `topology`'s exec stages under `directory` (the topology file's directory).
    ///
    /// A command argument names a stage file when, taken relative to the stage's working directory
    /// (itself relative to `directory`), it is a regular file whose real path lies under
    /// `directory`. The program (argv[0]) counts only when it contains a `/`, as only then is it a
    /// path rather than a name looked up on `PATH`. Absolute arguments are the worker's own.
    init(topology: Topology, directory: String) {
        let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path
        var total = 0
        for stage in topology.stages {
            guard case .exec(let exec) = stage.handler else { continue }
            let base = Topology.absolute(exec.workingDirectory ?? ".", in: root)
            var files: [StageFile] = []
            for (position, argument) in exec.command.enumerated() {
                guard !argument.isEmpty, !argument.hasPrefix("/"), !argument.contains("{}") else { continue }
                if position == 0 && !argument.contains("/") { continue }
                guard !files.contains(where: { $0.path == argument }) else { continue }
                let candidate = Topology.absolute(argument, in: base)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
                let real = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().standardizedFileURL.path
                guard real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
                    warnings.append("stage '\(stage.name)': '\(argument)' is outside the topology's directory \(root) and is not shipped; workers need their own copy")
                    continue
                }
                guard let data = FileManager.default.contents(atPath: real) else {
                    warnings.append("stage '\(stage.name)': cannot read '\(real)'; it is not shipped")
                    continue
                }
                guard data.count <= StageFiles.maxFileSize, total + data.count <= StageFiles.maxTotalSize else {
                    warnings.append("stage '\(stage.name)': '\(argument)' (\(data.count) bytes) is beyond what the broker ships (\(StageFiles.maxFileSize >> 20) MiB a file, \(StageFiles.maxTotalSize >> 20) MiB in all); workers need their own copy")
                    continue
                }
                let bytes = [UInt8](data)
                let digest = SHA256.hexDigest(bytes)
                if contents[digest] == nil {
                    contents[digest] = bytes
                    total += bytes.count
                }
                files.append(StageFile(path: argument, sha256: digest, size: bytes.count, executable: position == 0 && access(real, X_OK) == 0))
            }
            if !files.isEmpty { manifest[stage.name] = files }
        }
    }

    var isEmpty: Bool { manifest.isEmpty }

    /// The answer to an `mmi.file` request body.
    func reply(to body: [[UInt8]]) -> StageFileReply {
        let asked = body.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        guard body.count == 1, StageFiles.isDigest(asked) else { return StageFileReply(status: .malformed, sha256: String(asked.prefix(64))) }
        guard let content = contents[asked] else { return StageFileReply(status: .notFound, sha256: asked) }
        return StageFileReply(status: .found, sha256: asked, content: content)
    }
}
