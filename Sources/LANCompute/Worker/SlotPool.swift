// The slots of a worker session: threads that run stage handlers, their job queues, results and joined stop.

import Foundation
import Logging
import Synchronization
import ZeroMQ

/// One item for a slot of served stage `stage`.
struct SlotJob: Equatable, Sendable {
    var stage: Int
    var item: RequestBatch.Item
}

/// What a slot finished: outcomes of items of served stage `stage`.
struct SlotResult: Equatable, Sendable {
    var stage: Int
    var outcomes: [ItemOutcome]
}

/// Jobs waiting for a stage's slot threads: a queue guarded by a condition variable.
final class JobQueue: @unchecked Sendable {
    // @unchecked Sendable: every access to `jobs`, `head` and `closed` holds `condition`.
    private let condition = NSCondition()
    private var jobs: [SlotJob] = []
    private var head = 0
    private var closed = false

    func put(_ batch: [SlotJob]) {
        condition.lock()
        jobs.append(contentsOf: batch)
        condition.broadcast()
        condition.unlock()
    }

    /// Up to `limit` waiting jobs (at least one: waits for it), or nil once the queue is closed.
    func take(limit: Int) -> [SlotJob]? {
        condition.lock()
        defer { condition.unlock() }
        while head >= jobs.count && !closed { condition.wait() }
        if closed { return nil }
        let end = min(jobs.count, head + max(1, limit))
        let taken = Array(jobs[head..<end])
        head = end
        if head > 1024 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return taken
    }

    /// Removes and returns every job no slot has taken yet: none of them has started.
    func withdraw() -> [SlotJob] {
        condition.lock()
        defer { condition.unlock() }
        let waiting = Array(jobs[head...])
        jobs.removeAll(keepingCapacity: true)
        head = 0
        return waiting
    }

    /// Wakes every waiting slot: `take` returns nil from now on, even with jobs left (they are handed back).
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Results posted by slot threads for the I/O thread: typed values, no frames to encode or decode.
final class SlotMailbox: Sendable {
    private let results = Mutex<[SlotResult]>([])

    /// Adds a result; true if the mailbox was empty (then the I/O thread needs a wake-up).
    func post(_ result: SlotResult) -> Bool {
        results.withLock { results in
            results.append(result)
            return results.count == 1
        }
    }

    func takeAll() -> [SlotResult] {
        results.withLock { results in
            defer { results.removeAll(keepingCapacity: true) }
            return results
        }
    }
}

/// Runs one item through a handler: the one place a worker calls `StageHandler.process`.
enum SlotWork {
    static func outcome(of job: SlotJob, handler: (any StageHandler)?, setupFailure: StageFailure?) -> ItemOutcome {
        let status: ItemOutcome.Status
        if let handler {
            do {
                status = .completed(outputs: try handler.process(StageItem(job.item)))
            } catch {
                if let stage = error.stage {
                    status = .failedAt(stage: stage, message: error.message, stderr: error.stderr ?? "")
                } else {
                    status = .failed(message: error.message, stderr: error.stderr ?? "")
                }
            }
        } else {
            let message = setupFailure?.message ?? "no handler"
            let stderr = setupFailure?.stderr ?? ""
            if let stage = setupFailure?.stage {
                status = .failedAt(stage: stage, message: message, stderr: stderr)
            } else {
                status = .failed(message: message, stderr: stderr)
            }
        }
        return ItemOutcome(id: job.item.header.id, epoch: job.item.header.epoch, attempt: job.item.header.attempt, status: status)
    }

    /// A handler for one slot of `plan` (a chain's plan: one handler running every member), or why
    /// there is none (the slot then fails its items with it).
    static func makeHandler(
        for plan: StagePlan, configuration: WorkerConfiguration, logger: Logger
    ) -> (handler: (any StageHandler)?, failure: StageFailure?) {
        do throws(StageFailure) {
            let make = { (spec: StageSpec) throws(StageFailure) -> any StageHandler in
                try StageHandlers.make(
                    for: spec, swiftFunctions: configuration.swiftFunctions, workingDirectory: configuration.workingDirectory)
            }
            guard plan.chain.count > 1 else { return (try make(plan.spec), nil) }
            var members: [(name: String, handler: any StageHandler)] = []
            for spec in plan.chain {
                do throws(StageFailure) {
                    members.append((spec.name, try make(spec)))
                } catch {
                    for member in members { member.handler.close() }
                    throw StageFailure(error.message, stderr: error.stderr, stage: spec.name)
                }
            }
            return (ChainHandler(members: members), nil)
        } catch {
            logger.error("stage \(plan.spec.name): cannot start a handler: \(error.message)")
            return (nil, error)
        }
    }
}

/// Every slot of one worker session, owned by the I/O thread: jobs go in through ``run(stage:jobs:)``,
/// results come out of ``takeResults()`` after ``wake`` turns readable, and ``close(within:)`` stops
/// the threads and joins them.
///
/// A stage whose plan runs inline has no threads: its handler runs on the I/O thread and its results
/// are returned at once.
final class SlotPools {
    /// The PULL the slot threads wake the I/O thread on; a frame on it means "look at the mailbox".
    let wake: Socket
    private let mailbox = SlotMailbox()
    private var queues: [JobQueue?] = []
    private var inline: [(handler: (any StageHandler)?, failure: StageFailure?)?] = []
    private var threads: [(name: String, exited: DispatchSemaphore)] = []
    private let logger: Logger

    /// `wake` is bound by the caller; slot threads connect to `wakeEndpoint` on `context`.
    init(plans: [StagePlan], configuration: WorkerConfiguration, wake: Socket, wakeEndpoint: String, context: Context, logger: Logger) {
        self.wake = wake
        self.logger = logger
        for (position, plan) in plans.enumerated() {
            if plan.runsInline {
                queues.append(nil)
                inline.append(SlotWork.makeHandler(for: plan, configuration: configuration, logger: logger))
                continue
            }
            let queue = JobQueue()
            queues.append(queue)
            inline.append(nil)
            for slot in 0..<plan.slots {
                let name = "lancompute-slot-\(plan.spec.name)-\(slot)"
                let exited = DispatchSemaphore(value: 0)
                threads.append((name, exited))
                Self.startSlot(
                    name: name, plan: plan, position: position, queue: queue, mailbox: mailbox, configuration: configuration,
                    wakeEndpoint: wakeEndpoint, context: context, logger: logger, exited: exited)
            }
        }
    }

    deinit {
        for queue in queues { queue?.close() }
    }

    /// Hands jobs to `stage`'s slots; for an inline stage runs them here and returns their outcomes.
    func run(stage: Int, jobs: [SlotJob]) -> [ItemOutcome]? {
        if let queue = queues[stage] {
            queue.put(jobs)
            return nil
        }
        guard let slot = inline[stage] else { return nil }
        return jobs.map { SlotWork.outcome(of: $0, handler: slot.handler, setupFailure: slot.failure) }
    }

    /// The jobs of `stage` no slot has taken yet, removed from its queue (none for an inline stage).
    func withdraw(stage: Int) -> [SlotJob] {
        queues.indices.contains(stage) ? queues[stage]?.withdraw() ?? [] : []
    }

    /// Everything the slot threads finished since the last call; drains the wake-ups first.
    func takeResults() throws(ZMQError) -> [SlotResult] {
        var drained = 0
        while drained < 10_000, try wake.tryReceive() != nil { drained += 1 }
        return mailbox.takeAll()
    }

    /// Stops taking jobs, waits up to `within` for every slot thread to exit, and returns the names of
    /// those still busy with an item then (they exit when it is done; its result is dropped).
    @discardableResult
    func close(within: Duration) -> [String] {
        for queue in queues { queue?.close() }
        for slot in inline { slot?.handler?.close() }
        inline.removeAll()
        let seconds = Double(within.components.seconds) + Double(within.components.attoseconds) / 1e18
        let deadline = DispatchTime.now() + max(0, seconds)
        var busy: [String] = []
        for thread in threads where thread.exited.wait(timeout: deadline) == .timedOut {
            busy.append(thread.name)
        }
        threads.removeAll()
        wake.close()
        if !busy.isEmpty {
            logger.warning("slot thread(s) \(busy.joined(separator: ", ")) still busy with an item; they stop after it")
        }
        return busy
    }

    private static func startSlot(
        name: String, plan: StagePlan, position: Int, queue: JobQueue, mailbox: SlotMailbox,
        configuration: WorkerConfiguration, wakeEndpoint: String, context: Context, logger: Logger, exited: DispatchSemaphore
    ) {
        let thread = Thread {
            defer { exited.signal() }
            let (handler, failure) = SlotWork.makeHandler(for: plan, configuration: configuration, logger: logger)
            defer { handler?.close() }
            do {
                // This thread's own socket: a wake-up only, so a full pipe (the I/O thread has plenty
                // of wake-ups waiting) may drop one; the result itself is in the mailbox.
                let push = try SocketFactory(context: context).socket(.slotWakeUp)
                defer { push.close() }
                try push.connect(wakeEndpoint)
                while let jobs = queue.take(limit: plan.takeLimit) {
                    let outcomes = jobs.map { SlotWork.outcome(of: $0, handler: handler, setupFailure: failure) }
                    if mailbox.post(SlotResult(stage: position, outcomes: outcomes)) {
                        _ = try push.trySend([UInt8]())
                    }
                }
            } catch {
                logger.debug("slot thread \(name) stopped: \(error)")
            }
        }
        thread.name = name
        thread.start()
    }
}

@available(*, unavailable) extension SlotPools: Sendable {}
