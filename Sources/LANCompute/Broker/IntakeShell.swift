// The broker shell's side of acknowledged intake: a `lancompute.intake` batch in, core inputs and one reply out.

/// What one intake request comes to: inputs for the core, the reply for the producer, and a
/// protocol error to count when the request did not parse.
struct IntakeStep {
    var inputs: [BrokerInput] = []
    var reply: [[UInt8]]
    var protocolError: ProtocolError?
    /// The batch newly accepted and recorded in the ledger, for the journal.
    var recorded: (producer: IntakeProducerID, sequence: UInt64, outcome: IntakeLedger.Outcome)?
}

extension BrokerLoop {
    /// Decides what to do with one batch sent to ``Intake/service``: checks it against the ledger
    /// (a resend is acknowledged again, never accepted twice), refuses it when the pipeline takes
    /// no intake, is draining or is full, and otherwise turns each item into an input for the
    /// core: accepted, or dead-lettered when it is larger than the item size limit. Items take
    /// their ids from the broker's running `read` position, as items of the `pull` source do.
    func intake(_ body: [[UInt8]]) -> IntakeStep {
        let batch: IntakeBatch
        do {
            batch = try IntakeBatch(body: body)
        } catch {
            let refusal = IntakeError(.malformed, reason: "malformed intake batch: \(error)", producer: nil, sequence: nil)
            return IntakeStep(reply: refusal.body, protocolError: ProtocolError(.malformedIntake, "malformed intake batch: \(error)"))
        }
        func refuse(_ refusal: IntakeRefusal, _ reason: String) -> IntakeStep {
            IntakeStep(reply: IntakeError(refusal, reason: reason, producer: batch.producer, sequence: batch.sequence).body)
        }
        guard case .pull = configuration.topology.source.kind else {
            return refuse(.noIntake, "pipeline \(configuration.topology.name) takes no intake: its source is not pull")
        }
        switch intakeLedger.verdict(producer: batch.producer, sequence: batch.sequence) {
        case .duplicate(let outcome):
            // Accepted before (its ack was lost, or is slow): say so again, accept nothing.
            let ack = IntakeAck(producer: batch.producer, sequence: batch.sequence,
                                status: outcome == nil ? .duplicateForgotten : .duplicate,
                                accepted: outcome?.accepted ?? 0, deadLettered: outcome?.deadLettered ?? [])
            return IntakeStep(reply: ack.body)
        case .aheadOfWindow(let highest):
            return refuse(.busy, "batch \(batch.sequence) is beyond this producer's window (up to \(highest)); resend it once earlier batches are acknowledged")
        case .new:
            break
        }
        guard lifecycle.isRunning else {
            return refuse(.draining, "pipeline \(configuration.topology.name) is stopping and takes no new items")
        }
        let queueLimit = max(1, configuration.topology.broker.queueLimit)
        guard core.queuedTotal < queueLimit else {
            return refuse(.busy, "busy, retry later: \(core.queuedTotal) items queued (queue limit \(queueLimit))")
        }
        let limit = Int(min(configuration.maxItemSize, configuration.maxFrameSize))
        var step = IntakeStep(reply: [])
        step.inputs.reserveCapacity(batch.items.count)
        var deadLettered: [Int] = []
        for (index, payload) in batch.items.enumerated() {
            let id = ItemID.source(position: UInt64(read))
            read += 1
            if payload.count > limit {
                deadLettered.append(index)
                step.inputs.append(.rejected(
                    id: id, payload: payload, reason: .tooLarge,
                    detail: "the item is \(payload.count) bytes, more than the broker's item size limit of \(limit) bytes (--max-item-size)"))
            } else {
                step.inputs.append(.accepted(id: id, payload: payload))
            }
        }
        let outcome = IntakeLedger.Outcome(accepted: batch.items.count - deadLettered.count, deadLettered: deadLettered)
        intakeLedger.record(producer: batch.producer, sequence: batch.sequence, outcome: outcome)
        step.recorded = (batch.producer, batch.sequence, outcome)
        // The caller journals the items and commits the journal before it sends this ack
        // (Docs/protocol.md, 14.4).
        step.reply = IntakeAck(producer: batch.producer, sequence: batch.sequence, status: .accepted,
                               accepted: outcome.accepted, deadLettered: deadLettered).body
        return step
    }
}
