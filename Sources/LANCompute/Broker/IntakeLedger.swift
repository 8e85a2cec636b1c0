// Which intake batches each producer has had accepted, so a resent batch is acknowledged again but never accepted twice.

/// The broker's memory of acknowledged intake, per producer (as Kafka's idempotent producer:
/// a producer id and sequence numbers). Pure: no sockets, no clock.
///
/// For each producer it keeps the highest sequence up to which every batch was accepted
/// (`contiguous`), the batches accepted above it within `window`, and the outcome of the last
/// `window` accepted batches, so that the ack of a resend says what the first one said.
/// At most `producerCapacity` producers are remembered; when a new one comes, the one heard from
/// least recently is forgotten. A batch from a forgotten producer is new again: if that producer
/// is still resending, its resend is accepted a second time (see Docs/protocol.md, 14.5).
struct IntakeLedger {
    /// What a batch's acceptance came to, echoed in every ack of that batch.
    struct Outcome: Equatable {
        var accepted: Int
        /// Positions in the batch of the items dead-lettered instead.
        var deadLettered: [Int]
    }

    /// What to do with a batch that just arrived.
    enum Verdict: Equatable {
        /// Never accepted: accept it, then ``record(producer:sequence:outcome:)`` it.
        case new
        /// Accepted before: acknowledge again, accept nothing. The outcome is nil when it is no longer remembered.
        case duplicate(Outcome?)
        /// More than `window` above the producer's contiguous sequence: refuse it for now (busy);
        /// it can be accepted once the batches below it are.
        case aheadOfWindow(highestAcceptable: UInt64)
    }

    private struct Producer {
        /// Every batch 1...contiguous was accepted.
        var contiguous: UInt64 = 0
        /// Batches accepted above `contiguous` (each at most `window` above it).
        var above: Set<UInt64> = []
        /// Outcomes of accepted batches with sequence > contiguous - window.
        var outcomes: [UInt64: Outcome] = [:]
        /// When the producer was last heard from, in the ledger's own count of calls.
        var lastHeard: UInt64
    }

    let window: UInt64
    let producerCapacity: Int
    private var producers: [IntakeProducerID: Producer] = [:]
    private var calls: UInt64 = 0
    /// Producers forgotten to make room for new ones, since the ledger was made.
    private(set) var forgotten = 0

    init(window: Int = Intake.maximumWindow, producerCapacity: Int = 1024) {
        precondition(window >= 1 && producerCapacity >= 1)
        self.window = UInt64(window)
        self.producerCapacity = producerCapacity
    }

    var producerCount: Int { producers.count }

    /// Classifies batch `sequence` (at least 1) of `producer`; counts as hearing from the producer.
    mutating func verdict(producer id: IntakeProducerID, sequence: UInt64) -> Verdict {
        calls += 1
        guard var producer = producers[id] else { return .new }
        producer.lastHeard = calls
        producers[id] = producer
        if sequence <= producer.contiguous || producer.above.contains(sequence) {
            return .duplicate(producer.outcomes[sequence])
        }
        let highest = producer.contiguous + window
        if sequence > highest { return .aheadOfWindow(highestAcceptable: highest) }
        return .new
    }

    /// Remembers that batch `sequence` of `producer` was accepted with `outcome`. Call only after
    /// a `.new` verdict for it.
    mutating func record(producer id: IntakeProducerID, sequence: UInt64, outcome: Outcome) {
        calls += 1
        var producer = producers[id] ?? makeRoom(for: id)
        producer.lastHeard = calls
        guard sequence > producer.contiguous, !producer.above.contains(sequence) else { return }
        producer.outcomes[sequence] = outcome
        if sequence == producer.contiguous + 1 {
            let before = producer.contiguous
            producer.contiguous = sequence
            while producer.above.remove(producer.contiguous + 1) != nil { producer.contiguous += 1 }
            // Outcomes more than `window` below the contiguous sequence are no longer needed by a
            // producer that keeps at most `window` batches unacknowledged.
            if producer.contiguous > window {
                let oldestKept = producer.contiguous - window + 1
                let firstDropped = before >= window ? before - window + 1 : 1
                if firstDropped < oldestKept {
                    for old in firstDropped..<oldestKept { producer.outcomes[old] = nil }
                }
            }
        } else {
            producer.above.insert(sequence)
        }
        producers[id] = producer
    }

    /// A new producer's empty record, after forgetting the least recently heard one if the ledger is full.
    private mutating func makeRoom(for id: IntakeProducerID) -> Producer {
        if producers.count >= producerCapacity, let oldest = producers.min(by: { $0.value.lastHeard < $1.value.lastHeard })?.key {
            producers[oldest] = nil
            forgotten += 1
        }
        return Producer(lastHeard: calls)
    }
}
