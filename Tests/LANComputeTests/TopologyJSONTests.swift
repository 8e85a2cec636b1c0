// The topology's JSON coding, as `mmi.topology` sends it to workers: durations in seconds, round trips.

import Foundation
import Testing
@testable import LANCompute

@Suite struct TopologyJSONTests {
    static func encode(_ topology: Topology) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(topology), as: UTF8.self)
    }

    static let sample = Topology(
        name: "t", source: SourceSpec(kind: .stdin),
        stages: [
            StageSpec(name: "a", handler: .builtin(name: "identity", options: [:]), timeout: .milliseconds(1500),
                      deadline: .seconds(90)),
            StageSpec(name: "b", handler: .builtin(name: "upper", options: [:]), from: ["a"]),
        ],
        sink: SinkSpec(kind: .stdout),
        broker: BrokerSettings(bind: "tcp://127.0.0.1:5555", heartbeatInterval: .milliseconds(500)))

    @Test func durationsAreSecondsAsPlainNumbers() throws {
        let json = try Self.encode(Self.sample)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let broker = try #require(object["broker"] as? [String: Any])
        #expect(broker["heartbeatInterval"] as? Double == 0.5, "\(json)")
        let stages = try #require(object["stages"] as? [[String: Any]])
        #expect(stages[0]["timeout"] as? Double == 1.5)
        #expect(stages[0]["deadline"] as? Double == 90)
        #expect(stages[1]["timeout"] == nil)
        #expect(json.contains(#""bind":"tcp://127.0.0.1:5555""#), "\(json)")
    }

    @Test func whatIsEncodedDecodesToTheSameTopology() throws {
        let json = try Self.encode(Self.sample)
        #expect(try JSONDecoder().decode(Topology.self, from: Data(json.utf8)) == Self.sample)
    }

    @Test func everyExampleTopologyRoundTrips() throws {
        for path in TopologyFixtures.examples {
            let topology = try TopologyLoader.load(path: TopologyFixtures.examplesDirectory.appendingPathComponent(path).path)
            let decoded = try JSONDecoder().decode(Topology.self, from: Data(try Self.encode(topology).utf8))
            #expect(decoded.stages == topology.stages, "\(path)")
            #expect(decoded.broker == topology.broker, "\(path)")
        }
    }

    @Test func aDurationFromAnotherLanguageIsRoundedToTheNanosecond() throws {
        #expect(Duration(jsonSeconds: 0.1) == .milliseconds(100))
        #expect(Duration(jsonSeconds: 1.1) == .milliseconds(1100))
        #expect(Duration(jsonSeconds: -1) == nil)
        #expect(Duration(jsonSeconds: .infinity) == nil)
        let bad = #"{"bind":"a","events":"b","aggregator":"c","heartbeatInterval":[0,500000000000000000],"heartbeatLiveness":3,"queueLimit":1}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BrokerSettings.self, from: Data(bad.utf8)) }
    }
}
