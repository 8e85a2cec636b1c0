// The broker shell's journal hooks: opening and recovering it, intake through it, one flush per loop iteration.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension BrokerLoop {
    /// Opens the journal (recovering what an earlier run left) before the aggregator starts, which
    /// needs to know how far to cut the sink back.
    func openJournal() throws(BrokerError) {
        guard let settings = configuration.journal else { return }
        let topology = configuration.topology
        let settlesOnAdmission: Bool
        switch topology.sink.kind {
        case .file: settlesOnAdmission = false
        case .stdout, .push: settlesOnAdmission = true
        }
        let opened = try BrokerJournal(configuration: settings, identity: BrokerJournal.identity(of: topology, epoch: core.epoch),
                                       settlesOnAdmission: settlesOnAdmission, context: sockets.context)
        journal = opened
        if opened.droppedTail > 0 {
            logger.warning("journal: dropped a record cut short (\(opened.droppedTail) bytes) at the end of the newest segment in \(settings.directory)")
        }
        if opened.isResume {
            let state = opened.recovered
            logger.notice("resuming from \(settings.directory): \(state.finished.count) source items finished earlier, \(state.settledIDs.count) items settled of unfinished ones, \(state.unfinishedPayloads.count) accepted items to redo; new epoch \(core.epoch)")
        }
    }

    /// Gives the core what the journal says settled earlier, and re-accepts the payloads of source
    /// items that were accepted but not finished (sources that cannot be read again).
    func resumeFromJournal(now: ContinuousClock.Instant) throws(BrokerError) {
        guard let journal, journal.isResume else { return }
        let state = journal.recovered
        let settled = state.settledIDs
        if !settled.isEmpty { perform(core.handle(.settledEarlier(ids: settled), at: now)) }
        // The ledger as it was: a producer resending a batch accepted before the crash is told so again.
        for entry in state.intakeBatches {
            guard let producer = IntakeProducerID(bytes: entry.producer) else { continue }
            intakeLedger.record(producer: producer, sequence: entry.sequence,
                                outcome: IntakeLedger.Outcome(accepted: Int(entry.accepted), deadLettered: entry.deadLettered.map { Int($0) }))
        }
        if BrokerJournal.journalsPayloads(configuration.topology.source) {
            read = Int(state.nextSourceID)
            if case .stdin = configuration.topology.source.kind { sourceIDBase = state.nextSourceID }
            let unfinished = state.unfinishedPayloads.sorted { $0.key < $1.key }
            // Already journaled: accepted again without a new record.
            perform(core.handle(batch: unfinished.map { BrokerInput.accepted(id: $0.key, payload: $0.value) }, at: now))
        }
        try commitJournal(now: now)
    }

    /// Source items from the reader: those an earlier run finished are skipped; the payloads of a
    /// source that cannot be read again are journaled.
    func accept(batchFrom first: UInt64, _ payloads: [[UInt8]]) {
        if let journal, BrokerJournal.journalsPayloads(configuration.topology.source) {
            journal.accepted(firstID: first, payloads: payloads)
        }
        for (offset, payload) in payloads.enumerated() {
            let id = ItemID.source(position: first + UInt64(offset))
            if let journal, journal.isResume, journal.recovered.finished.contains(id) {
                alreadyDone += 1
                continue
            }
            gathered.append(.accepted(id: id, payload: payload))
            read += 1
        }
    }

    /// Journals the payloads of acknowledged intake (each run of consecutive ids as one record).
    /// Items dead-lettered at intake are not: they are settled as they enter.
    func journalIntake(_ step: IntakeStep) {
        guard let journal else { return }
        let inputs = step.inputs
        var first: UInt64 = 0
        var payloads: [[UInt8]] = []
        for input in inputs {
            guard case .accepted(let id, let payload) = input else { continue }
            if payloads.isEmpty || id != first + UInt64(payloads.count) {
                journal.accepted(firstID: first, payloads: payloads)
                first = id
                payloads.removeAll(keepingCapacity: true)
            }
            payloads.append(payload)
        }
        journal.accepted(firstID: first, payloads: payloads)
        if let (producer, sequence, outcome) = step.recorded {
            journal.intakeAccepted(IntakeEntry(producer: producer.bytes, sequence: sequence, accepted: UInt32(outcome.accepted),
                                               deadLettered: outcome.deadLettered.map { UInt32($0) }))
        }
    }

    /// Writes this iteration's records (and syncs them, as the policy says), then sends what had to
    /// wait for them. Call before anything that depends on the journal, such as acknowledging intake.
    ///
    /// The `fsync` of `--fsync batch` runs on the journal's sync thread: the loop goes on
    /// dispatching, and what must wait for the disk (held admissions, intake acknowledgements) waits
    /// in ``heldForDisk`` for the write that carried its records (``releaseDurable()``).
    func commitJournal(now: ContinuousClock.Instant) throws(BrokerError) {
        guard let journal else { return }
        try journal.flush(now: now)
        for command in heldAdmissions { heldForDisk.append((journal.writtenGeneration, .aggregator(command))) }
        heldAdmissions.removeAll(keepingCapacity: true)
        sendReleased()
    }

    /// As ``commitJournal(now:)``, then forces the journal to disk on this thread and sends
    /// everything held: at the end of a run.
    func commitJournalToDisk(now: ContinuousClock.Instant) throws(BrokerError) {
        guard let journal else { return }
        try commitJournal(now: now)
        try journal.flushAndSync(now: now)
        sendReleased()
    }

    /// An effect of records already written by ``commitJournal(now:)``: it leaves once they are
    /// released (at once without a journal, or when the policy does not wait for the disk).
    func afterJournal(_ effect: HeldEffect) {
        guard let journal else { return carryOut(effect) }
        heldForDisk.append((journal.writtenGeneration, effect))
        sendReleased()
    }

    /// The journal's sync thread answered: what waited for those writes leaves.
    func releaseDurable() {
        do { try journal?.drainSyncs() } catch { journalFailure = journalFailure ?? error }
        sendReleased()
    }

    private func sendReleased() {
        guard let journal, !heldForDisk.isEmpty else { return }
        let released = journal.releasedGeneration
        var count = 0
        while count < heldForDisk.count, heldForDisk[count].generation <= released {
            carryOut(heldForDisk[count].effect)
            count += 1
        }
        heldForDisk.removeFirst(count)
    }

    private func carryOut(_ effect: HeldEffect) {
        switch effect {
        case .aggregator(let command): try? aggregator?.send(command)
        case .routed(let frames, let peer): send(routed: frames, to: peer)
        }
    }

    /// Closes the journal at the end of the run; a complete run removes its state, so running the
    /// same command again starts afresh.
    func closeJournal(complete: Bool) throws(BrokerError) {
        guard let journal else { return }
        try journal.finish(removingState: complete)
        if complete { logger.info("run complete: removed the state directory \(journal.configuration.directory)") }
    }

    /// A resumed run keeps the dead letters of earlier runs, but not the items an interrupted run
    /// wrote there as unfinished: those are done by this run.
    func keepDeadLettersOfEarlierRuns() {
        let path = configuration.resolvedDeadLetterPath
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var kept = Data()
        for line in data.split(separator: 0x0A) {
            let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
            let reason = object?["reason_code"] as? String
            if reason == DeadLetterReason.runStopped.rawValue || reason == DeadLetterReason.runEnded.rawValue { continue }
            kept.append(contentsOf: line)
            kept.append(0x0A)
        }
        if kept.count != data.count { try? kept.write(to: URL(fileURLWithPath: path), options: .atomic) }
    }
}

/// What waits for the journal before it leaves the broker.
enum HeldEffect {
    /// An admission or outputs for the aggregator (a sink that cannot be cut back).
    case aggregator(AggregatorCommand)
    /// A reply to a peer of the ROUTER (an intake acknowledgement).
    case routed([[UInt8]], peer: PeerID)
}
