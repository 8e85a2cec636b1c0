// Temporary: a minimal sink aggregation until the stage layer's SinkAggregator lands.
struct SinkAggregator {
    let sink: SinkSpec
    var counts: [String: Int] = [:]
    var collected: [String] = []
    var unkeyed = 0
    init(_ sink: SinkSpec) { self.sink = sink }
    var isStreaming: Bool { sink.aggregate == .none }
    mutating func add(_ output: [UInt8]) {
        let text = String(decoding: output, as: UTF8.self)
        switch sink.aggregate {
        case .none: break
        case .collect: collected.append(text)
        case .countByKey, .sumByKey: counts[text, default: 0] += 1
        }
    }
    func finalLines() -> [String] {
        counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .map { "{\"\(sink.keyName)\": \"\($0.key)\", \"count\": \($0.value)}" } + (collected.isEmpty ? [] : ["\(collected)"])
    }
    static func line(for output: [UInt8], format: SinkSpec.Format) -> String { String(decoding: output, as: UTF8.self) }
}
