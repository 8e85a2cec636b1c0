// Checks that topology files load into the right model and that every invalid file gets its exact located error.

import Foundation
import Testing
@testable import LANCompute

@Suite struct TopologyLoaderTests {
    /// Variables the corpus and examples must not see, whatever the machine has set.
    static let environment: [String: String] = ["HOME": "/home/test"]

    static func load(_ yaml: String, environment: [String: String] = environment) throws(TopologyErrors) -> Topology {
        try TopologyLoader.load(yaml: yaml, file: "test.yaml", environment: environment)
    }

    static func diagnostics(_ yaml: String, environment: [String: String] = environment) -> [TopologyDiagnostic] {
        do {
            _ = try load(yaml, environment: environment)
            return []
        } catch {
            return error.diagnostics
        }
    }

    // MARK: Examples and corpus

    @Test func examplesExist() {
        #expect(TopologyFixtures.examples.count >= 5)
    }

    @Test(arguments: TopologyFixtures.examples)
    func exampleIsValid(name: String) throws {
        let path = TopologyFixtures.examplesDirectory.appendingPathComponent(name).path
        do {
            let topology = try TopologyLoader.load(path: path, environment: Self.environment)
            #expect(!topology.stages.isEmpty)
        } catch {
            Issue.record("\(name) is invalid:\n\(error)")
        }
    }

    @Test func corpusIsLargeEnough() {
        #expect(TopologyFixtures.invalidCases.count >= 30)
    }

    @Test(arguments: TopologyFixtures.invalidCases)
    func invalidFileGivesItsLocatedError(name: String) throws {
        let path = TopologyFixtures.invalidDirectory.appendingPathComponent(name).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let expected = try #require(TopologyFixtures.expectation(in: text), "\(name) lacks '# expect: LCnnnn LINE:COLUMN'")
        do {
            _ = try TopologyLoader.load(path: path, environment: Self.environment)
            Issue.record("\(name) loaded without errors")
        } catch {
            #expect(error.diagnostics.count == 1, "\(error)")
            let first = try #require(error.diagnostics.first)
            let found = TopologyFixtures.Expectation(code: first.code, line: first.location.line, column: first.location.column)
            #expect(found == expected, "\(first)")
            #expect(first.location.file == path)
            #expect(first.description.hasPrefix("\(path):\(expected.line):\(expected.column): error \(expected.code): "))
        }
    }

    @Test func everyCodeInTheCorpusIsCatalogued() throws {
        let codes = Set(TopologyErrorCode.allCases.map(\.rawValue))
        for name in TopologyFixtures.invalidCases {
            let text = try String(contentsOfFile: TopologyFixtures.invalidDirectory.appendingPathComponent(name).path, encoding: .utf8)
            let expected = try #require(TopologyFixtures.expectation(in: text))
            #expect(codes.contains(expected.code), "\(name)")
        }
    }

    // MARK: The model

    @Test func wordcountExampleMeansWhatItSays() throws {
        let path = TopologyFixtures.examplesDirectory.appendingPathComponent("wordcount.yaml").path
        let topology = try TopologyLoader.load(path: path, environment: Self.environment)
        #expect(topology.name == "wordcount")
        #expect(topology.source == SourceSpec(kind: .file(path: "data/wordcount.txt"), format: .lines))
        #expect(topology.stages.map(\.name) == ["split"])
        #expect(topology.stages[0].handler == .builtin(name: "split-words", options: [:]))
        #expect(topology.stages[0].from == [])
        #expect(
            topology.sink
                == SinkSpec(
                    kind: .file(path: "out/wordcount.jsonl"), format: .jsonl, aggregate: .countByKey, key: .item,
                    keyName: "word"))
    }

    @Test func defaultsFillWhatIsNotWritten() throws {
        let topology = try Self.load(
            """
            version: 1
            name: defaults
            source: {stdin: true}
            stages:
              - name: a
              - name: b
                builtin: upper
            sink: {stdout: true}
            """)
        #expect(topology.broker == BrokerSettings())
        #expect(topology.description == nil)
        #expect(topology.stages[0].from == [])
        #expect(topology.stages[0].handler == .external)
        #expect(topology.stages[1].from == ["a"])
        #expect(topology.stages[1].replicas == nil && topology.stages[1].slotRule == .fixed(1))
        #expect(topology.stages[1].maxAttempts == 3)
        #expect(topology.sink == SinkSpec(kind: .stdout))
    }

    @Test func fromBuildsADag() throws {
        let topology = try Self.load(
            """
            version: 1
            name: dag
            source: {stdin: true}
            stages:
              - name: parse
              - name: left
              - name: right
                from: parse
              - name: both
                from: [left, right]
              - name: side
                from: source
            sink: {stdout: true}
            """)
        #expect(topology.stages.map(\.from) == [[], ["parse"], ["parse"], ["left", "right"], []])
        #expect(topology.terminalStages.map(\.name) == ["both", "side"])
    }

    @Test func everyFieldIsRead() throws {
        let topology = try Self.load(
            """
            version: 1
            name: full
            description: all the keys
            source:
              generate: {count: 1000, size: 1KiB}
              format: binary
            stages:
              - name: run
                exec:
                  command: [python3, "-u", step.py, "{}"]
                  mode: per-item
                  output: json-array
                  working-directory: work
                  environment: {LEVEL: "3"}
                replicas: 4
                credit: 16
                requires: {arch: aarch64, os: linux, gpu: false, min-memory: 512MB, min-cores: 2, labels: {zone: a}}
                prefers: {gpu: true}
                group-by: {regex: "id=(\\\\d+)"}
                priority: -2
                timeout: 1.5s
                max-attempts: 5
                deadline: 1m
              - name: pick
                builtin: grep
                options: {pattern: "^x", invert: true}
                group-by: {field: 2}
            sink:
              push: tcp://collector:6000
              aggregate: sum-by-key
              key: {json: user.id}
            broker:
              bind: tcp://*:7000
              events: ipc:///tmp/events
              aggregator: inproc://aggregate
              heartbeat-interval: 250ms
              heartbeat-liveness: 5
              queue-limit: 100
            """)
        #expect(topology.description == "all the keys")
        #expect(topology.source == SourceSpec(kind: .generate(count: 1000, size: 1024), format: .binary))
        let run = topology.stages[0]
        #expect(
            run.handler
                == .exec(
                    ExecSpec(
                        command: ["python3", "-u", "step.py", "{}"], mode: .perItem, output: .jsonArray,
                        workingDirectory: "work", environment: ["LEVEL": "3"])))
        #expect(run.replicas == 4)
        #expect(run.credit == 16)
        #expect(
            run.requires
                == Requirements(arch: "arm64", os: "linux", gpu: false, minMemory: 512_000_000, minCores: 2, labels: ["zone": "a"]))
        #expect(run.prefers == Requirements(gpu: true))
        #expect(run.groupBy == .regex(pattern: "id=(\\d+)", group: 1))
        #expect(run.priority == -2)
        #expect(run.timeout == .milliseconds(1500))
        #expect(run.maxAttempts == 5)
        #expect(run.deadline == .seconds(60))
        #expect(topology.stages[1].handler == .builtin(name: "grep", options: ["pattern": "^x", "invert": "true"]))
        #expect(topology.stages[1].groupBy == .field(2))
        #expect(topology.sink == SinkSpec(kind: .push(endpoint: "tcp://collector:6000"), format: .jsonl, aggregate: .sumByKey, key: .jsonField("user.id")))
        #expect(
            topology.broker
                == BrokerSettings(
                    bind: "tcp://*:7000", events: "ipc:///tmp/events", aggregator: "inproc://aggregate",
                    heartbeatInterval: .milliseconds(250), heartbeatLiveness: 5, queueLimit: 100))
    }

    @Test func sourceMapRemembersPositions() throws {
        let topology = try Self.load(
            """
            version: 1
            name: where
            source:
              file: in.txt
            stages:
              - name: a
                replicas: 3
                from: source
            sink: {stdout: true}
            """)
        #expect(topology.location(of: "name") == SourceLocation(file: "test.yaml", line: 2, column: 7))
        #expect(topology.location(of: "source.file") == SourceLocation(file: "test.yaml", line: 4, column: 9))
        #expect(topology.location(of: "stages[0].replicas") == SourceLocation(file: "test.yaml", line: 7, column: 15))
        #expect(topology.location(of: "stages[0].from[0]") == SourceLocation(file: "test.yaml", line: 8, column: 11))
        #expect(topology.stages[0].location == SourceLocation(file: "test.yaml", line: 6, column: 5))
    }

    @Test func environmentVariablesAreSubstituted() throws {
        let yaml = """
            version: 1
            name: ${NAME:-unnamed}
            source: {file: "${DATA}/in.txt"}
            stages:
              - name: a
                replicas: ${REPLICAS:-2}
            sink: {stdout: true}
            """
        let topology = try Self.load(yaml, environment: ["DATA": "/data", "REPLICAS": "7"])
        #expect(topology.name == "unnamed")
        #expect(topology.source.kind == .file(path: "/data/in.txt"))
        #expect(topology.stages[0].replicas == 7)
    }

    @Test func everyProblemIsReportedInFileOrder() {
        let found = Self.diagnostics(
            """
            version: 1
            name: many
            source: {stdin: true}
            stages:
              - name: a
                replicas: 0
              - name: b
                timeout: soon
                from: [c]
            sink:
              stdout: true
              aggregate: count-by-key
            """)
        #expect(found.map(\.code) == ["LC1053", "LC1052", "LC1022", "LC1061"])
        #expect(found.map(\.location.line) == [6, 8, 9, 12])
    }

    @Test func unknownKeyWithoutCloseMatchListsTheAllowedKeys() {
        let found = Self.diagnostics(
            """
            version: 1
            name: x
            source: {stdin: true, colour: blue}
            stages: [{name: a}]
            sink: {stdout: true}
            """)
        #expect(found.count == 1)
        #expect(found.first?.message == "unknown key 'colour' in source; allowed keys: file, stdin, pull, generate, format")
    }

    @Test func unreadableFileIsLocatedAtItsStart() {
        do {
            _ = try TopologyLoader.load(path: "/nonexistent/topology.yaml")
            Issue.record("loaded a file that does not exist")
        } catch {
            #expect(error.diagnostics.map(\.description) == ["/nonexistent/topology.yaml:1:1: error LC1001: cannot read file: no such file"])
        }
    }

    @Test func cycleIsNamedInFlowOrder() {
        let found = Self.diagnostics(
            """
            version: 1
            name: loop
            source: {stdin: true}
            stages:
              - name: a
              - name: b
                from: [a, d]
              - name: c
              - name: d
            sink: {stdout: true}
            """)
        #expect(found.map(\.message) == ["the from: links form a cycle: b -> c -> d -> b"])
    }

    @Test func mergeKeysShareSettingsBetweenStages() throws {
        let topology = try Self.load(
            """
            version: 1
            name: merged
            x-gpu: &gpu
              replicas: 2
              requires: {gpu: true, min-memory: 8GiB}
            source: {stdin: true}
            stages:
              - name: a
                <<: *gpu
                replicas: 4
              - name: b
                <<: *gpu
            sink: {stdout: true}
            """)
        #expect(topology.stages.map(\.replicas) == [4, 2])
        #expect(topology.stages.map(\.requires) == Array(repeating: Requirements(gpu: true, minMemory: 8 << 30), count: 2))
    }

    @Test func columnsCountUnicodeCharacters() {
        let found = Self.diagnostics(
            """
            version: 1
            name: "café naïve"
            source: {file: "données/café.txt", stdin: true}
            stages: [{name: a}]
            sink: {stdout: true}
            """)
        #expect(found.map(\.location.column) == [36])  // 38 if bytes were counted
        #expect(found.map(\.code) == ["LC1011"])
    }

    @Test func aLinkToAnInvalidNameIsNotReportedTwice() {
        let found = Self.diagnostics(
            """
            version: 1
            name: x
            source: {stdin: true}
            stages:
              - name: "bad name"
              - name: b
                from: bad name
            sink: {stdout: true}
            """)
        #expect(found.map(\.code) == ["LC1024"])
    }

    // MARK: Placement keys

    @Test func gpuKeysAndSpreadLoad() throws {
        let topology = try Self.load(
            """
            version: 1
            name: gpus
            source: {stdin: true}
            stages:
              - name: train
                exec: {command: [train]}
                requires: {min-gpus: 2, gpu-model: "RTX 4090", min-gpu-memory: 16GiB}
                prefers: {gpu-model: a100}
                spread: true
            sink: {stdout: true}
            """)
        let train = topology.stages[0]
        #expect(train.requires == Requirements(minGPUs: 2, gpuModel: "RTX 4090", minGPUMemory: 16 << 30))
        #expect(train.prefers == Requirements(gpuModel: "a100"))
        #expect(train.spread)
        // The encoder writes them back.
        let again = try Self.load(TopologyEncoder.yaml(for: topology)).stages[0]
        #expect(again.requires == train.requires)
        #expect(again.prefers == train.prefers)
        #expect(again.spread)
    }

    @Test func badGPUKeysAndSpreadAreLocated() {
        let found = Self.diagnostics(
            """
            version: 1
            name: bad
            source: {stdin: true}
            stages:
              - name: a
                requires: {min-gpus: 0, min-gpu-memory: lots, gpu-model: ""}
              - name: b
                requires:
                  gpu: false
                  gpu-model: T4
              - name: c
                group-by: item
                spread: true
              - name: d
                spread: sometimes
            sink: {stdout: true}
            """)
        #expect(found.map(\.code) == ["LC1053", "LC1051", "LC1005", "LC1073", "LC1074", "LC1005"])
        #expect(found.map(\.location.line) == [6, 6, 6, 10, 13, 15])
        #expect(found[3].message == "requires in stage 'b' has gpu: false and gpu-model, which asks for a GPU; remove one of them")
    }

    // MARK: Circuit breaker

    @Test func breakerTakesFalseTrueOrItsThresholdsAndRoundTrips() throws {
        let topology = try Self.load(
            """
            version: 1
            name: breakers
            source: {stdin: true}
            stages:
              - name: plain
                builtin: identity
              - name: off
                builtin: identity
                breaker: false
              - name: tuned
                builtin: identity
                breaker: {failures: 2, cooldown: 1500ms}
            sink: {stdout: true}
            """)
        #expect(topology.stages[0].breaker == .standard)
        #expect(topology.stages[1].breaker.enabled == false)
        #expect(topology.stages[2].breaker == BreakerPolicy(enabled: true, failures: 2, window: 20, cooldown: .milliseconds(1500)))
        let again = try TopologyLoader.load(yaml: TopologyEncoder.yaml(for: topology), file: "again.yaml", environment: [:])
        #expect(again.stages.map(\.breaker) == topology.stages.map(\.breaker))
        let decoded = try JSONDecoder().decode(Topology.self, from: JSONEncoder().encode(topology))
        #expect(decoded.stages.map(\.breaker) == topology.stages.map(\.breaker))
    }

    @Test func aBreakerThatCouldNeverOpenOrHasBadFieldsIsLocated() {
        let found = Self.diagnostics(
            """
            version: 1
            name: bad
            source: {stdin: true}
            stages:
              - name: a
                builtin: identity
                breaker: {failures: 30, window: 20}
              - name: b
                builtin: identity
                breaker: {failures: 0, cooldown: 5, windows: 3}
              - name: c
                builtin: identity
                breaker: sometimes
            sink: {stdout: true}
            """)
        #expect(found.map(\.code) == ["LC1070", "LC1053", "LC1052", "LC1004", "LC1005"])
        #expect(found.map(\.location.line) == [7, 10, 10, 10, 13])
        #expect(found.first?.message.contains("breaker in stage 'a'") == true)
        #expect(found.first?.message.contains("make failures at most window") == true)
    }
}
