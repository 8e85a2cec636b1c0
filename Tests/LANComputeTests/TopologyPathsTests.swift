// Checks that relative paths in a topology are taken against the topology file's directory.

import Testing
@testable import LANCompute

@Suite struct TopologyPathsTests {
    @Test func relativePathsBecomeAbsolute() {
        let topology = Topology(
            name: "paths", source: SourceSpec(kind: .file(path: "data/in.txt")),
            stages: [
                StageSpec(name: "a", handler: .exec(ExecSpec(command: ["python3", "scripts/a.py"]))),
                StageSpec(name: "b", handler: .exec(ExecSpec(command: ["b"], workingDirectory: "../work")), from: ["a"]),
                StageSpec(name: "c", handler: .exec(ExecSpec(command: ["c"], workingDirectory: "/abs")), from: ["b"]),
                StageSpec(name: "d", handler: .builtin(name: "upper", options: [:]), from: ["c"]),
            ],
            sink: SinkSpec(kind: .file(path: "/var/out.txt")))
        let resolved = topology.resolvingPaths(relativeTo: "/srv/pipelines")
        #expect(resolved.source.kind == .file(path: "/srv/pipelines/data/in.txt"))
        #expect(resolved.sink.kind == .file(path: "/var/out.txt"))
        let directories = resolved.stages.map { stage -> String? in
            if case let .exec(exec) = stage.handler { return exec.workingDirectory }
            return nil
        }
        #expect(directories == ["/srv/pipelines", "/srv/work", "/abs", nil])
        #expect(resolved.stages[3] == topology.stages[3])
    }

    @Test func streamsAreLeftAlone() {
        let topology = Topology(name: "s", source: SourceSpec(kind: .stdin), stages: [StageSpec(name: "a", handler: .external)], sink: SinkSpec(kind: .stdout))
        #expect(topology.resolvingPaths(relativeTo: "/x") == topology)
    }
}
