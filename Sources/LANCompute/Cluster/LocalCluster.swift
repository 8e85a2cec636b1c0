// The embedded default: a broker, its aggregator and N workers in one process, for `lancompute run`.

import Foundation
import Logging
import Synchronization

/// Runs a whole pipeline on this machine: the broker on the calling thread, workers on threads of their own.
public final class LocalCluster: Sendable {
    public let broker: Broker
    public let workerCount: Int
    let workerTemplate: WorkerConfiguration
    let logger: Logger
    private let workers = Mutex<[Worker]>([])

    /// `workerTemplate.brokerEndpoint` is replaced by the endpoint the broker actually binds.
    public init(broker: Broker, workers: Int, workerTemplate: WorkerConfiguration = WorkerConfiguration(brokerEndpoint: ""),
                logger: Logger = Logger(label: "lancompute.run")) {
        self.broker = broker
        self.workerCount = max(1, workers)
        self.workerTemplate = workerTemplate
        self.logger = logger
    }

    /// Stops intake and drains (thread-safe): the run then ends with a summary.
    public func stop() { broker.stop() }

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
        }
        return try broker.run(onReady: { endpoints in
            for index in 0..<self.workerCount {
                var configuration = self.workerTemplate
                configuration.brokerEndpoint = endpoints.dispatch
                configuration.nodeID = "\(NodeInfo.hostName)-local-\(index)"
                let worker = Worker(configuration: configuration, logger: self.logger)
                self.workers.withLock { $0.append(worker) }
                let thread = Thread {
                    do { try worker.run() } catch { self.logger.error("local worker \(index) failed: \(error)") }
                }
                thread.name = "lancompute-worker-\(index)"
                thread.start()
            }
            onReady(endpoints)
        }, onProgress: onProgress)
    }
}
