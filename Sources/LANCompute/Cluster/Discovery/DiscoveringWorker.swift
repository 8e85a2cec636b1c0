// `worker --discover`: a Worker pointed at whichever broker of the cluster answers, re-pointed when it moves.

import Foundation
import Logging
import Synchronization

/// Runs a ``Worker`` for the broker a ``BrokerFinder`` finds. The worker reconnects to the same
/// endpoint on its own (a broker restarted in place); when that endpoint stops answering and
/// another broker of the cluster answers (restarted on another port or host), this stops the
/// worker and starts a new one there.
public final class DiscoveringWorker: Sendable {
    private let template: WorkerConfiguration
    private let finder: BrokerFinder
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let current = LockedValue<Worker?>(nil)
    /// What ended a worker for good (a refused key, an unknown `--stages` name): retrying would not help.
    private let failure = LockedValue<RuntimeError?>(nil)
    /// Called each time a broker is chosen (the CLI prints it).
    private let onBroker: @Sendable (DiscoveredBroker) -> Void

    public init(template: WorkerConfiguration, finder: BrokerFinder, logger: Logger,
                onBroker: @escaping @Sendable (DiscoveredBroker) -> Void = { _ in }) {
        self.template = template
        self.finder = finder
        self.logger = logger
        self.onBroker = onBroker
    }

    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        current.withLock { $0?.stop() }
    }

    private var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

    /// Returns after ``stop()`` (nil), or the error that ended a worker, as `lancompute worker`
    /// without discovery would exit with it.
    @discardableResult
    public func run() -> RuntimeError? {
        defer { finder.stop() }
        var waitingSaid = false
        while !isStopRequested, failure.withLock({ $0 }) == nil {
            guard let broker = finder.find(within: .seconds(2), shouldStop: { isStopRequested }) else {
                if !waitingSaid {
                    logger.notice("looking for a broker of cluster \(finder.options.cluster)\(finder.options.interface.map { " on \($0)" } ?? "")")
                    waitingSaid = true
                }
                continue
            }
            waitingSaid = false
            onBroker(broker)
            serve(broker)
        }
        return failure.withLock { $0 }
    }

    /// Runs one worker for `broker` until stopped or until another broker should take over.
    private func serve(_ broker: DiscoveredBroker) {
        var configuration = template
        configuration.brokerEndpoint = broker.dispatchEndpoint
        if configuration.aggregatorEndpoint == nil { configuration.aggregatorEndpoint = broker.aggregatorEndpoint }
        let worker = Worker(configuration: configuration, logger: logger)
        current.withLock { $0 = worker }
        if isStopRequested { worker.stop() }
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { [logger] in
            do {
                try worker.run()
            } catch let error as RuntimeError {
                self.failure.withLock { $0 = error }
            } catch {
                logger.error("worker for \(broker.dispatchEndpoint) failed: \(error)")
            }
            done.signal()
        }
        thread.name = "lancompute-discovered-worker"
        thread.start()
        var failedProbes = 0
        while done.wait(timeout: .now() + .seconds(1)) == .timedOut {
            if isStopRequested { continue }  // the worker is stopping; wait for it
            failedProbes = BrokerProbe.answers(broker.dispatchEndpoint, within: finder.options.probeTimeout, curve: finder.options.probeCurve) ? 0 : failedProbes + 1
            guard failedProbes >= 2 else { continue }
            guard let next = finder.find(within: .zero, excluding: [broker.announcement.instance]),
                  next.dispatchEndpoint != broker.dispatchEndpoint else { continue }
            logger.notice("broker \(broker.dispatchEndpoint) stopped answering; cluster \(finder.options.cluster) now answers at \(next.dispatchEndpoint)")
            worker.stop()
            _ = done.wait(timeout: .now() + .seconds(15))
            current.withLock { $0 = nil }
            onBroker(next)
            return serve(next)
        }
        current.withLock { $0 = nil }
    }
}
