// Makes the relative paths of a topology file absolute: they are relative to the file's directory.

import Foundation

extension Topology {
    /// The same pipeline with the source file, sink file and exec working directories made
    /// absolute against `directory` (normally the topology file's own directory). An exec stage
    /// without a working directory gets `directory`, so its command may name scripts beside the file.
    public func resolvingPaths(relativeTo directory: String) -> Topology {
        var copy = self
        if case let .file(path) = source.kind {
            copy.source.kind = .file(path: Self.absolute(path, in: directory))
        }
        if case let .file(path) = sink.kind {
            copy.sink.kind = .file(path: Self.absolute(path, in: directory))
        }
        for index in copy.stages.indices {
            guard case var .exec(exec) = copy.stages[index].handler else { continue }
            exec.workingDirectory = Self.absolute(exec.workingDirectory ?? ".", in: directory)
            copy.stages[index].handler = .exec(exec)
        }
        return copy
    }

    static func absolute(_ path: String, in directory: String) -> String {
        let base = URL(fileURLWithPath: directory, isDirectory: true)
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: path, relativeTo: base)
        return url.standardizedFileURL.path
    }
}
