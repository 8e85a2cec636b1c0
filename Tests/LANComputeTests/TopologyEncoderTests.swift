// Checks that a topology written as YAML loads back into the same model.

import Foundation
import Testing
@testable import LANCompute

@Suite struct TopologyEncoderTests {
    static func roundTrip(_ topology: Topology) throws -> Topology {
        let yaml = TopologyEncoder.yaml(for: topology)
        do {
            return try TopologyLoader.load(yaml: yaml, file: "encoded.yaml", environment: [:])
        } catch {
            Issue.record("encoded topology does not load:\n\(error)\n---\n\(yaml)")
            throw error
        }
    }

    @Test(arguments: TopologyFixtures.examples)
    func exampleSurvivesARoundTrip(name: String) throws {
        let path = TopologyFixtures.examplesDirectory.appendingPathComponent(name).path
        let loaded = try TopologyLoader.load(path: path, environment: [:])
        let again = try Self.roundTrip(loaded)
        #expect(again.withoutSourcePositions() == loaded.withoutSourcePositions())
    }

    @Test func everyFieldSurvivesARoundTrip() throws {
        let topology = Topology(
            name: "every: field", description: "quotes \" and ${NOT_A_VARIABLE} and \\ and\nnew lines",
            source: SourceSpec(kind: .generate(count: 10, size: 3 << 20), format: .binary),
            stages: [
                StageSpec(
                    name: "first",
                    handler: .exec(
                        ExecSpec(
                            command: ["python3", "-c", "print('{}'.upper())", "{}", "--flag=a: b", "#x", ""],
                            mode: .perItem, output: .jsonArray, workingDirectory: "/tmp/work dir",
                            environment: ["A": "1", "B": "true", "C": ""])),
                    replicas: 3, credit: 9,
                    requires: Requirements(arch: "x86_64", os: "macos", gpu: true, minMemory: 1_500, minCores: 8, labels: ["zone": "b", "tier": "gold"]),
                    prefers: Requirements(labels: ["rack": "7"]),
                    groupBy: .regex(pattern: "^(\\w+):", group: 1), priority: 9, timeout: .milliseconds(1_250),
                    maxAttempts: 1, deadline: .seconds(7_200)),
                StageSpec(name: "second", handler: .builtin(name: "grep", options: ["pattern": "[\"']", "invert": "false"]), from: ["first"]),
                StageSpec(name: "third", handler: .external, from: [], groupBy: .field(0)),
                StageSpec(name: "fourth", handler: .builtin(name: "json-get", options: ["field": "a.b"]), from: ["second", "third"], groupBy: .jsonField("k")),
                StageSpec(name: "fifth", handler: .builtin(name: "identity", options: [:]), from: ["first"], groupBy: .item),
            ],
            sink: SinkSpec(kind: .push(endpoint: "tcp://[::1]:7000"), format: .jsonl, aggregate: .countByKey, key: .item, keyName: "true"),
            broker: BrokerSettings(
                bind: "tcp://*:6000", events: "ipc:///tmp/lan events", aggregator: "inproc://agg",
                heartbeatInterval: .seconds(2), heartbeatLiveness: 4, queueLimit: 5))
        let again = try Self.roundTrip(topology)
        #expect(again.withoutSourcePositions() == topology)
    }

    @Test func defaultsAreLeftOut() {
        let yaml = TopologyEncoder.yaml(
            for: Topology(
                name: "small", source: SourceSpec(kind: .stdin),
                stages: [StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .builtin(name: "upper", options: [:]), from: ["a"])],
                sink: SinkSpec(kind: .stdout)))
        #expect(
            yaml == """
                version: 1
                name: small
                source:
                  stdin: true
                stages:
                  - name: a
                  - name: b
                    builtin: upper
                sink:
                  stdout: true
                  format: lines

                """)
    }

    @Test func scalarsNeedingQuotesAreQuoted() {
        #expect(TopologyEncoder.scalar("plain-word_1.txt") == "plain-word_1.txt")
        #expect(TopologyEncoder.scalar("tcp://host:5555") == "tcp://host:5555")
        #expect(TopologyEncoder.scalar("two words") == "\"two words\"")
        #expect(TopologyEncoder.scalar("") == "\"\"")
        #expect(TopologyEncoder.scalar("null") == "\"null\"")
        #expect(TopologyEncoder.scalar("-x") == "\"-x\"")
        #expect(TopologyEncoder.scalar("a\"b") == "\"a\\\"b\"")
        #expect(TopologyEncoder.scalar("${HOME}") == "\"$${HOME}\"")
    }
}
