// The embedded default: a broker, its aggregator and N workers in one process, for `lancompute run`.

import Foundation
import Logging
import Synchronization
import ZeroMQ

/// Runs a whole pipeline on this machine: the broker on the calling thread, workers on threads of their own.
public final class LocalCluster: Sendable {
    public let broker: Broker
    public let workerCount: Int
    let context: Context
    let workerTemplate: WorkerConfiguration
    let logger: Logger
    private let workers = Mutex<[Worker]>([])
    private let finished = Countdown()

    /// Local workers talk to the broker over inproc, in one ZeroMQ context; the broker's TCP
    /// endpoints stay open for workers on other machines. `workerTemplate.brokerEndpoint` is replaced.
    public init(configuration: BrokerConfiguration, workers: Int, workerTemplate: WorkerConfiguration = WorkerConfiguration(brokerEndpoint: ""),
                logger: Logger = Logger(label: "lancompute.run")) throws(BrokerError) {
        var configuration = configuration
        let name = "lancompute-local-\(UUID().uuidString)"
        configuration.inprocName = name
        do { context = try Context() } catch { throw BrokerError(.brokerSetup, "cannot create a ZeroMQ context: \(error)") }
        self.broker = Broker(configuration: configuration, logger: logger, context: context)
        self.workerCount = max(1, workers)
        self.workerTemplate = workerTemplate
        self.logger = logger
    }

    /// Stops intake and drains (thread-safe): the run then ends with a summary.
    public func stop() { broker.stop() }

    /// Ends the drain at once (thread-safe): see ``Broker/stopDraining()``.
    public func stopDraining() { broker.stopDraining() }

    public func run(
        onReady: @Sendable @escaping (BrokerEndpoints) -> Void = { _ in },
        onProgress: (@Sendable (RunProgress) -> Void)? = nil
    ) throws(BrokerError) -> RunSummary {
        defer {
            let running = workers.withLock { list in
                defer { list.removeAll() }
                return list
            }
            for worker in running { worker.stop() }
            finished.wait(for: running.count, timeout: .seconds(10))
            context.shutdown()
        }
        return try broker.run(onReady: { endpoints in
            let name = self.broker.configuration.inprocName!
            // Workers of other machines can join only through a dispatch endpoint they can reach.
            let othersMayJoin = (try? Endpoint(parsing: endpoints.dispatch, use: .bind))?.isLoopback != true
            for index in 0..<self.workerCount {
                var configuration = self.workerTemplate
                configuration.brokerEndpoint = "inproc://\(name)-dispatch"
                configuration.aggregatorEndpoint = "inproc://\(name)-aggregator"
                configuration.nodeID = "\(NodeInfo.hostName)-local-\(index)"
                // One process shares the machine among its workers: per-core stages get their share each.
                configuration.cores = max(1, self.workerTemplate.cores / self.workerCount)
                // Same process, nothing crosses a network: the values come from the loaded topology.
                configuration.stageEnvironment = self.broker.configuration.topology.environmentValues
                // A speed figure ranks machines; with no other machine able to join, it ranks nothing.
                configuration.measuresSpeed = self.workerTemplate.measuresSpeed && othersMayJoin
                let worker = Worker(configuration: configuration, logger: self.logger, context: self.context)
                self.workers.withLock { $0.append(worker) }
                let thread = Thread {
                    do { try worker.run() } catch { self.logger.error("local worker \(index) failed: \(error)") }
                    self.finished.signal()
                }
                thread.name = "lancompute-worker-\(index)"
                thread.start()
            }
            onReady(endpoints)
        }, onProgress: onProgress)
    }
}

/// Counts threads that have finished, so the cluster can wait for its workers before closing the context.
final class Countdown: @unchecked Sendable {
    // @unchecked Sendable: `count` is only touched while holding `condition`.
    private let condition = NSCondition()
    private var count = 0

    func signal() {
        condition.lock()
        count += 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `target` signals have arrived, or `timeout` passes.
    func wait(for target: Int, timeout: Duration) {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        condition.lock()
        while count < target && condition.wait(until: deadline) {}
        condition.unlock()
    }
}
