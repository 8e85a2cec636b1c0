// The LANCompute item header and reply header frames that extend MDP/0.1 REQUEST and REPLY bodies.

/// What travels with an item besides its payload.
public struct ItemHeader: Equatable, Sendable {
    /// Stable id: the same input always gets the same id, so duplicates can be recognised.
    public var id: UInt64
    /// The run the item belongs to: a broker refuses outcomes of another run, so a restart never mixes runs.
    public var epoch: UInt32
    /// 1 for the first attempt, 2 for the first retry, ...
    public var attempt: UInt16
    public var priority: Int16
    /// Milliseconds since the Unix epoch after which the item is dead-lettered; 0: none.
    public var deadline: UInt64
    /// The group-by key, empty when the stage has none.
    public var key: [UInt8]
    /// W3C trace context, empty when not traced.
    public var traceparent: [UInt8]

    public init(
        id: UInt64, epoch: UInt32 = 0, attempt: UInt16, priority: Int16 = 0, deadline: UInt64 = 0, key: [UInt8] = [],
        traceparent: [UInt8] = []
    ) {
        self.id = id
        self.epoch = epoch
        self.attempt = attempt
        self.priority = priority
        self.deadline = deadline
        self.key = key
        self.traceparent = traceparent
    }
}

/// The body of a REQUEST to a LANCompute worker: one header frame for N items, then N payload frames.
///
/// Header frame: version (1 byte, 2), count (4), then per item: id (8), epoch (4), attempt (2),
/// priority (2, signed), deadline (8), key length (2), key, traceparent length (1), traceparent.
public struct RequestBatch: Equatable, Sendable {
    public static let version: UInt8 = 2

    /// One item of a batch: its header and its payload frame.
    public struct Item: Equatable, Sendable {
        public var header: ItemHeader
        public var payload: [UInt8]

        public init(_ header: ItemHeader, _ payload: [UInt8]) {
            self.header = header
            self.payload = payload
        }
    }

    public var items: [Item]

    public init(items: [Item]) { self.items = items }

    public var frames: [[UInt8]] {
        var frames = [Self.headerFrame(of: items)]
        frames.reserveCapacity(items.count + 1)
        for index in items.indices { frames.append(items[index].payload) }
        return frames
    }

    /// A whole REQUEST to `peer` carrying `items`, routing id first, built in one go (the item path).
    /// Its `client` frame is the first item's token, or ``MDP/clientItemsAddress`` when the items
    /// came from MDP clients and their outputs must come back in the REPLY.
    public static func routedFrames(to peer: [UInt8], forClients: Bool, items: [Item]) -> [[UInt8]] {
        let client = forClients || items.isEmpty
            ? MDP.clientItemsAddress
            : ItemToken(id: items[0].header.id, epoch: items[0].header.epoch, attempt: items[0].header.attempt).bytes
        var frames = WorkerMessage.routedRequest(to: peer, client: client, body: EmptyCollection(), headerFrame: headerFrame(of: items),
                                                 reservingFor: items.count)
        // By index: a loop or lazy map over the items copied each whole item (its three arrays
        // retained and released) to read one field of it.
        for index in items.indices { frames.append(items[index].payload) }
        return frames
    }

    /// The item header frame for these items.
    public static func headerFrame(of items: [Item]) -> [UInt8] {
        // Sized first, then written in place: the broker writes one of these per REQUEST, and
        // appending field by field was a few percent of its thread. Fields are read through the
        // index (`items[index].header.id`), which reads in place; an iterator copied each item.
        var size = 5
        for index in items.indices {
            size += fixedHeaderSize + min(items[index].header.key.count, Int(UInt16.max)) + min(items[index].header.traceparent.count, 255)
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            var offset = 0
            func put<T: FixedWidthInteger>(_ value: T) {
                base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
                offset += MemoryLayout<T>.size
            }
            func put(_ bytes: [UInt8], upTo limit: Int) {
                let count = min(bytes.count, limit)
                if count > 0 {
                    bytes.withUnsafeBytes { source in (base + offset).copyMemory(from: source.baseAddress!, byteCount: count) }
                }
                offset += count
            }
            put(Self.version)
            put(UInt32(items.count))
            for index in items.indices {
                put(items[index].header.id)
                put(items[index].header.epoch)
                put(items[index].header.attempt)
                put(items[index].header.priority)
                put(items[index].header.deadline)
                put(UInt16(min(items[index].header.key.count, Int(UInt16.max))))
                put(items[index].header.key, upTo: Int(UInt16.max))
                put(UInt8(min(items[index].header.traceparent.count, 255)))
                put(items[index].header.traceparent, upTo: 255)
            }
            precondition(offset == size, "item header frame: wrote \(offset) of \(size) bytes")
            initialized = offset
        }
    }

    /// The bytes of one item's header without its key and traceparent.
    private static let fixedHeaderSize = 8 + 4 + 2 + 2 + 8 + 2 + 1

    public init(frames body: [[UInt8]]) throws(WireError) {
        guard let first = body.first else { throw WireError("request body has no item header frame") }
        var reader = ByteReader(first)
        let version = try reader.readUInt8("header version")
        guard version == Self.version else { throw WireError("item header version \(version) is not supported") }
        let count = Int(try reader.readUInt32("item count"))
        guard body.count == count + 1 else {
            throw WireError("item header announces \(count) items but \(body.count - 1) payload frames follow")
        }
        var items: [Item] = []
        items.reserveCapacity(count)
        for index in 0..<count {
            let id = try reader.readUInt64("item id")
            let epoch = try reader.readUInt32("epoch")
            let attempt = try reader.readUInt16("attempt")
            let priority = Int16(bitPattern: try reader.readUInt16("priority"))
            let deadline = try reader.readUInt64("deadline")
            let key = try reader.readBytes(Int(try reader.readUInt16("key length")), "key")
            let trace = try reader.readBytes(Int(try reader.readUInt8("traceparent length")), "traceparent")
            items.append(Item(ItemHeader(id: id, epoch: epoch, attempt: attempt, priority: priority, deadline: deadline, key: key, traceparent: trace), body[index + 1]))
        }
        guard reader.isAtEnd else { throw WireError("item header has \(reader.remaining) trailing bytes") }
        self.items = items
    }
}

/// What became of one item in a worker's reply.
public struct ItemOutcome: Equatable, Sendable {
    public enum Status: Equatable, Sendable {
        /// Succeeded with these outputs (empty: the item was filtered out).
        case completed(outputs: [[UInt8]])
        /// Succeeded and the outputs were PUSHed to the aggregator directly; `count` of them.
        case deliveredToAggregator(count: Int)
        /// The attempt failed.
        case failed(message: String, stderr: String)
        /// The attempt at a chain failed at its member `stage` (the stages before it succeeded).
        case failedAt(stage: String, message: String, stderr: String)
        /// Not run: handed back unstarted (a worker yielding to its machine's owner); no attempt is used.
        case returned
    }

    public var id: UInt64
    /// The run of the item, echoed from its ``ItemHeader``.
    public var epoch: UInt32
    public var attempt: UInt16
    public var status: Status

    public init(id: UInt64, epoch: UInt32 = 0, attempt: UInt16, status: Status) {
        self.id = id
        self.epoch = epoch
        self.attempt = attempt
        self.status = status
    }
}

/// The body of a REPLY from a LANCompute worker, and of a message to the aggregator:
/// one header frame, then each item's frames in order (its outputs, or two error frames).
///
/// Header frame: version (1 byte, 2 or 3), count (4), then per item: id (8), epoch (4), attempt (2),
/// status (1: 0 completed, 1 delivered to the aggregator, 2 failed, 3 failed at a chain member,
/// 4 handed back unstarted: 3 and 4 in version 3 only), number (4: outputs that follow; outputs
/// delivered for status 1; 2 error frames for status 2; 3 frames, the member's name and the 2 error
/// frames, for status 3; 0 for status 4).
///
/// A reply is written as version 2 unless it holds a status 3 or 4, so a broker that knows only
/// version 2 reads every reply of a worker that runs no chain (and only a broker that announces
/// chains in `mmi.topology` gets workers that run them; only one that announces `ownerPolicy`
/// gets status 4).
public struct ReplyBatch: Equatable, Sendable {
    public static let version: UInt8 = 2
    /// The version whose status 3 names the chain member that failed.
    public static let chainVersion: UInt8 = 3
    public var outcomes: [ItemOutcome]

    public init(outcomes: [ItemOutcome]) { self.outcomes = outcomes }

    public var frames: [[UInt8]] {
        let chained = outcomes.contains {
            switch $0.status {
            case .failedAt, .returned: true
            case .completed, .deliveredToAggregator, .failed: false
            }
        }
        var header: [UInt8] = [chained ? Self.chainVersion : Self.version]
        header.reserveCapacity(5 + outcomes.count * 19)
        header.appendBigEndian(UInt32(outcomes.count))
        // The header goes first once it is written; the outputs follow it, gathered in place (one
        // output per item is the common case), so no second array is built to put the header in front.
        var frames: [[UInt8]] = [[]]
        frames.reserveCapacity(1 + outcomes.count)
        for outcome in outcomes {
            header.appendBigEndian(outcome.id)
            header.appendBigEndian(outcome.epoch)
            header.appendBigEndian(outcome.attempt)
            switch outcome.status {
            case .completed(let outputs):
                header.append(0)
                header.appendBigEndian(UInt32(outputs.count))
                frames += outputs
            case .deliveredToAggregator(let count):
                header.append(1)
                header.appendBigEndian(UInt32(count))
            case .failed(let message, let stderr):
                header.append(2)
                header.appendBigEndian(UInt32(2))
                frames.append(Array(message.utf8))
                frames.append(Array(stderr.utf8))
            case .failedAt(let stage, let message, let stderr):
                header.append(3)
                header.appendBigEndian(UInt32(3))
                frames.append(Array(stage.utf8))
                frames.append(Array(message.utf8))
                frames.append(Array(stderr.utf8))
            case .returned:
                header.append(4)
                header.appendBigEndian(UInt32(0))
            }
        }
        frames[0] = header
        return frames
    }

    public init(frames body: [[UInt8]]) throws(WireError) {
        try self.init(frames: body[...])
    }

    /// Parses a reply body given as a slice (the frames after a REPLY's empty frame), without copying it.
    public init(frames body: ArraySlice<[UInt8]>) throws(WireError) {
        let base = body.startIndex
        guard let first = body.first else { throw WireError("reply body has no reply header frame") }
        var reader = ByteReader(first)
        let version = try reader.readUInt8("reply header version")
        guard version == Self.version || version == Self.chainVersion else {
            throw WireError("reply header version \(version) is not supported")
        }
        let count = Int(try reader.readUInt32("outcome count"))
        guard count <= body.count * 1_000_000 else { throw WireError("implausible outcome count \(count)") }
        var next = 1
        var outcomes: [ItemOutcome] = []
        outcomes.reserveCapacity(min(count, 100_000))
        for _ in 0..<count {
            let id = try reader.readUInt64("item id")
            let epoch = try reader.readUInt32("epoch")
            let attempt = try reader.readUInt16("attempt")
            let status = try reader.readUInt8("status")
            let number = Int(try reader.readUInt32("frame count"))
            switch status {
            case 0:
                guard next + number <= body.count else { throw WireError("reply announces more output frames than it has") }
                outcomes.append(ItemOutcome(id: id, epoch: epoch, attempt: attempt, status: .completed(outputs: Array(body[(base + next)..<(base + next + number)]))))
                next += number
            case 1:
                outcomes.append(ItemOutcome(id: id, epoch: epoch, attempt: attempt, status: .deliveredToAggregator(count: number)))
            case 2:
                guard number == 2, next + 2 <= body.count else { throw WireError("a failed outcome needs 2 error frames") }
                let message = String(decoding: body[base + next], as: UTF8.self)
                let stderr = String(decoding: body[base + next + 1], as: UTF8.self)
                outcomes.append(ItemOutcome(id: id, epoch: epoch, attempt: attempt, status: .failed(message: message, stderr: stderr)))
                next += 2
            case 3 where version == Self.chainVersion:
                guard number == 3, next + 3 <= body.count else { throw WireError("a failed chain outcome needs 3 frames") }
                let stage = String(decoding: body[base + next], as: UTF8.self)
                let message = String(decoding: body[base + next + 1], as: UTF8.self)
                let stderr = String(decoding: body[base + next + 2], as: UTF8.self)
                outcomes.append(ItemOutcome(id: id, epoch: epoch, attempt: attempt, status: .failedAt(stage: stage, message: message, stderr: stderr)))
                next += 3
            case 4 where version == Self.chainVersion:
                guard number == 0 else { throw WireError("a handed-back outcome has no frames, not \(number)") }
                outcomes.append(ItemOutcome(id: id, epoch: epoch, attempt: attempt, status: .returned))
            default:
                throw WireError("unknown outcome status \(status)")
            }
        }
        guard reader.isAtEnd else { throw WireError("reply header has \(reader.remaining) trailing bytes") }
        guard next == body.count else { throw WireError("reply has \(body.count - next) frames the header does not announce") }
        self.outcomes = outcomes
    }
}

/// The `client` frame the broker puts on a REQUEST to a plain MDP worker: item id (8), epoch (4)
/// and attempt (2). The worker echoes it in its REPLY, which is how the reply is matched to the item.
public struct ItemToken: Equatable, Sendable {
    public var id: UInt64
    public var epoch: UInt32
    public var attempt: UInt16

    public init(id: UInt64, epoch: UInt32 = 0, attempt: UInt16) {
        self.id = id
        self.epoch = epoch
        self.attempt = attempt
    }

    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(14)
        bytes.appendBigEndian(id)
        bytes.appendBigEndian(epoch)
        bytes.appendBigEndian(attempt)
        return bytes
    }

    public init(bytes: [UInt8]) throws(WireError) {
        guard bytes.count == 14 else { throw WireError("client frame is not an item token (14 bytes), got \(bytes.count)") }
        var reader = ByteReader(bytes)
        id = try reader.readUInt64("item id")
        epoch = try reader.readUInt32("epoch")
        attempt = try reader.readUInt16("attempt")
    }
}

/// Stable ids for items derived from other items, so a retried parent yields the same children.
public enum ItemID {
    /// The id of output `index` of item `parent`, sent on to the stage at `stageIndex`.
    public static func derived(parent: UInt64, stageIndex: Int, outputIndex: Int) -> UInt64 {
        mix(parent &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(stageIndex + 1) ^ mix(UInt64(outputIndex) &+ 0x632B_E59B_D9B4_E019))
    }

    /// The id of the `position`-th item (0-based) of a finite source.
    public static func source(position: UInt64) -> UInt64 { position }

    /// SplitMix64's finaliser: a bijection that scatters nearby values.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
