// Where each value of a loaded topology was written, so later errors can point into the file.

/// Source positions by key path: `name`, `source.file`, `stages[2].replicas`, `stages[0].from[1]`,
/// `stages[1].exec.command[0]`, `sink.key.regex`, `broker.bind`. A mapping's own path gives
/// the position of its first key; a list's path gives the position of its first entry.
public struct SourceMap: Sendable, Equatable, Codable {
    public var locations: [String: SourceLocation]

    public init(locations: [String: SourceLocation] = [:]) {
        self.locations = locations
    }

    public subscript(path: String) -> SourceLocation? {
        get { locations[path] }
        set { locations[path] = newValue }
    }

    public var isEmpty: Bool { locations.isEmpty }
}

extension Topology {
    /// Where the value at `path` (see `SourceMap`) was written, if the topology came from a file.
    public func location(of path: String) -> SourceLocation? {
        sourceMap[path]
    }

    /// The same pipeline without any source positions, for comparing meanings rather than files.
    public func withoutSourcePositions() -> Topology {
        var copy = self
        copy.sourceMap = SourceMap()
        for index in copy.stages.indices {
            copy.stages[index].location = nil
        }
        return copy
    }
}
