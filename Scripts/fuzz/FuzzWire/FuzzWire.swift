// libFuzzer entry point for every frame decoder, and for the broker core fed with what they decode.

@testable import LANCompute

/// Turns fuzzer bytes into choices, numbers and multipart messages, never reading past the end.
struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) -> T {
        var value: T = 0
        for _ in 0..<MemoryLayout<T>.size { value = value << 8 | T(truncatingIfNeeded: byte()) }
        return value
    }

    /// A frame: a length byte (255: a two-byte length follows), then that many bytes or what is left.
    mutating func frame() -> [UInt8] {
        var length = Int(byte())
        if length == 255 { length = Int(integer(UInt16.self)) }
        let end = min(bytes.count, offset + length)
        defer { offset = end }
        return offset < end ? Array(bytes[offset..<end]) : []
    }

    /// A message of 0 to 15 frames.
    mutating func frames() -> [[UInt8]] {
        let count = Int(byte() % 16)
        return (0..<count).map { _ in frame() }
    }
}

/// Decodes and, where it decodes, re-encodes and decodes again: both must agree.
func checkRoundTrip<Value: Equatable>(_ value: Value, _ encode: (Value) -> [[UInt8]], _ decode: ([[UInt8]]) throws -> Value) {
    guard let again = try? decode(encode(value)) else { fatalError("\(Value.self) does not decode its own encoding: \(value)") }
    precondition(again == value, "\(Value.self) changes through encode and decode: \(value) became \(again)")
}

func fuzzDecoders(_ input: inout FuzzInput) {
    let frames = input.frames()
    let first = frames.first ?? []
    if let (_, message) = try? WorkerMessage.routed(frames) {
        checkRoundTrip(message, \.frames) { try WorkerMessage(frames: $0) }
        if case .reply(let client, let body) = message {
            _ = try? WorkerReply(client: client, body: body, batched: true)
            _ = try? WorkerReply(client: client, body: body, batched: false)
        }
    }
    if let (_, message) = try? ClientMessage.routed(frames) {
        checkRoundTrip(message, \.frames) { try ClientMessage(frames: $0) }
        if let batch = try? IntakeBatch(body: message.body) { checkRoundTrip(batch, \.body) { try IntakeBatch(body: $0) } }
    }
    if let batch = try? RequestBatch(frames: frames) { checkRoundTrip(batch, \.frames) { try RequestBatch(frames: $0) } }
    if let batch = try? ReplyBatch(frames: frames) { checkRoundTrip(batch, \.frames) { try ReplyBatch(frames: $0) } }
    if let capabilities = try? Capabilities(decoding: first) {
        checkRoundTrip(capabilities, { [$0.encoded()] }) { try Capabilities(decoding: $0[0]) }
        _ = (capabilities.credit, capabilities.batch, capabilities.labels)
        _ = capabilities.bounded(toBytes: Int(input.byte()) * 16, valueBytes: Int(input.byte()))
    }
    if let token = try? ItemToken(bytes: first) { checkRoundTrip(token, { [$0.bytes] }) { try ItemToken(bytes: $0[0]) } }
    if let ack = try? IntakeAck(frame: first) { checkRoundTrip(ack, { [$0.frame] }) { try IntakeAck(frame: $0[0]) } }
    _ = try? IntakeError(body: frames)
    _ = try? IntakeReply(body: frames)
    if let record = try? JournalRecord(body: first) { checkRoundTrip(record, { [$0.body] }) { try JournalRecord(body: $0[0]) } }
    // A journal segment: records back to back until one is cut short or damaged.
    var offset = 0
    while offset < first.count, case .record(_, let next) = RecordFrame.scan(first, at: offset) {
        precondition(next > offset, "a journal record that takes no bytes at offset \(offset)")
        offset = next
    }
    _ = try? AggregatorCommand(frames: frames)
    _ = try? AggregatorEvent(frames: frames)
    _ = try? BeaconDatagram(bytes: first)
    _ = BrokerAnnouncement(txtRecord: first)
}

/// A broker core with two stages (the second with a timeout) fed a bounded sequence of inputs:
/// messages from four peers through the real decoders, items, client requests, ticks.
func fuzzCore(_ input: inout FuzzInput) {
    var topology = Topology(
        name: "fuzz", source: SourceSpec(kind: .stdin),
        stages: [StageSpec(name: "a", handler: .external), StageSpec(name: "b", handler: .external, from: ["a"], timeout: .seconds(5))],
        sink: SinkSpec(kind: .stdout))
    topology.broker.heartbeatInterval = .milliseconds(500)
    let core = BrokerCore(topology: topology, ackTimeout: .seconds(30))
    var now = ContinuousClock.now
    var step = 0
    while !input.isAtEnd && step < 64 {
        step += 1
        let input_: BrokerInput?
        switch input.byte() % 8 {
        case 0, 1, 2:
            let peer: PeerID = [input.byte() % 4]
            let frames = [peer] + input.frames()
            input_ = (try? WorkerMessage.routed(frames)).map { BrokerInput.worker(peer: $0.peer, message: $0.message) }
        case 3:
            input_ = .accepted(id: UInt64(input.byte()), payload: input.frame())
        case 4:
            now += .milliseconds(Int(input.integer(UInt16.self)))
            input_ = .tick
        case 5:
            input_ = .clientRequest(stage: Int(input.byte() % 2), id: (1 << 63) | UInt64(step), payload: input.frame(), client: [9], service: "a")
        case 6:
            input_ = .aggregatorAcknowledged(ids: (0..<Int(input.byte() % 4)).map { _ in UInt64(input.byte()) })
        default:
            input_ = .sendFailed(peer: [input.byte() % 4], unsent: (0..<Int(input.byte() % 4)).map { _ in UInt64(input.byte()) })
        }
        if let input_ { _ = core.handle(input_, at: now) }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = start.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
    var input = FuzzInput(bytes)
    if input.byte() % 2 == 0 { fuzzDecoders(&input) } else { fuzzCore(&input) }
    return 0
}
#endif
