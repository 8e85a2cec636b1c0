// The public face of a worker: its configuration, and `Worker`, which runs the session shell until stopped.

import Foundation
import Logging
import Synchronization
import ZeroMQ

/// How a worker connects and what it offers.
public struct WorkerConfiguration: Sendable {
    /// The broker's dispatch endpoint, e.g. `tcp://head:5555`.
    public var brokerEndpoint: String
    /// Handler slots per stage, over any `replicas`; nil: each stage's ``StageSpec/slotRule``.
    public var slots: Int?
    /// Logical cores this worker may fill: the slots of a stage whose rule is one per core.
    /// The machine's by default; `lancompute run` shares them among its local workers.
    public var cores = ProcessInfo.processInfo.activeProcessorCount
    /// The owner policy (`--yield-to-owner`): while the rest of the machine keeps more than this many
    /// cores busy, the worker takes no new items and hands back those not started. Nil: it never yields.
    public var ownerThreshold: Double?
    /// `K=V` labels announced to the broker (matched by `requires`/`prefers`).
    public var labels: [String: String]
    /// Serve only these stages; nil: every stage this worker can serve.
    public var stages: Set<String>?
    /// Swift functions serving stages that declare no handler, by stage name.
    public var swiftFunctions: [String: SwiftStageFunction]
    /// The directory `exec` commands and their relative paths resolve against.
    public var workingDirectory: String
    /// This process's id in the cluster (events, metrics).
    public var nodeID: String
    /// Where to PUSH final outputs instead of the aggregator endpoint the broker advertises.
    public var aggregatorEndpoint: String?
    /// How long ``Worker/stop()`` lets the items already held finish before handing the rest back;
    /// zero: hand everything back at once.
    public var stopGrace: Duration
    /// This worker's key pair and the broker's public key: every socket to the broker is a CURVE
    /// client that talks to that broker only. Nil: no keys, allowed on loopback or with `insecure`.
    public var curve: (keyPair: CurveKeyPair, serverKey: [UInt8])?
    /// Connect to a broker beyond loopback without keys (`--insecure`).
    public var insecure = false
    /// The programs exec stages may run here (`--allow-exec`).
    public var execPolicy = ExecPolicy.anyProgram
    /// Exec environment values known on this machine, by stage and name; the broker sends names only.
    public var stageEnvironment: [String: [String: String]] = [:]
    /// Where stage files fetched from the broker are kept; nil: none are fetched, and exec commands
    /// resolve against this machine's files only (the in-process workers of `lancompute run`).
    public var stageFileCache: StageFileCache?
    /// Run the speed benchmark (about 100 ms before the first READY) and announce its figure. Off
    /// for the in-process workers of a `lancompute run` whose broker only this machine can reach:
    /// every worker they compete with is on this machine, so the figure would rank nothing.
    public var measuresSpeed = true

    public init(
        brokerEndpoint: String, slots: Int? = nil, labels: [String: String] = [:], stages: Set<String>? = nil,
        swiftFunctions: [String: SwiftStageFunction] = [:],
        workingDirectory: String = FileManager.default.currentDirectoryPath,
        nodeID: String = "\(NodeInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))",
        stopGrace: Duration = .zero
    ) {
        self.brokerEndpoint = brokerEndpoint
        self.slots = slots
        self.labels = labels
        self.stages = stages
        self.swiftFunctions = swiftFunctions
        self.workingDirectory = workingDirectory
        self.nodeID = nodeID
        self.stopGrace = stopGrace
    }
}

/// Serves stages for a broker until stopped. Start it with ``run()`` on a thread of its own.
///
/// ```swift
/// let worker = Worker(broker: "tcp://127.0.0.1:5555", handlers: [
///     "reverse": { item in [Array(item.reversed())] },
/// ])
/// try worker.run()
/// ```
public final class Worker: Sendable {
    public let configuration: WorkerConfiguration
    let logger: Logger
    /// 0: running; 1: stop after draining (``stop()``); 2: stop at once (``stopAtOnce()``).
    private let stopLevel = Atomic<Int>(0)
    /// Signalled by every stop request, so a worker waiting with no socket open wakes for it.
    private let stopSignal = DispatchSemaphore(value: 0)
    let sharedContext: Context?

    /// `context`: the ZeroMQ context to use (needed for inproc endpoints); nil: a context of its own.
    public init(configuration: WorkerConfiguration, logger: Logger = Logger(label: "lancompute.worker"), context: Context? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.sharedContext = context
    }

    /// A worker serving the given stages with Swift functions (and any builtin or exec stage it can).
    public convenience init(broker: String, handlers: [String: SwiftStageFunction], logger: Logger = Logger(label: "lancompute.worker")) {
        self.init(configuration: WorkerConfiguration(brokerEndpoint: broker, swiftFunctions: handlers), logger: logger)
    }

    /// Asks the worker to finish (thread-safe): it takes no new items, lets those it holds finish and
    /// answers them for up to `configuration.stopGrace`, hands the rest back with DISCONNECT, and
    /// returns from ``run()``.
    public func stop() {
        _ = stopLevel.compareExchange(expected: 0, desired: 1, ordering: .relaxed)
        stopSignal.signal()
    }

    /// Asks the worker to finish now (thread-safe): every item it holds goes back to the broker with
    /// DISCONNECT, unanswered, and ``run()`` returns.
    public func stopAtOnce() {
        stopLevel.store(2, ordering: .relaxed)
        stopSignal.signal()
    }

    /// 0: running, 1: draining asked, 2: stop at once asked.
    var requestedStop: Int { stopLevel.load(ordering: .relaxed) }

    /// Waits up to `timeout` for a stop request; it may return early for one already seen.
    func waitForStopRequest(upTo timeout: Duration) {
        // Capped, so the nanoseconds fit in an Int: the callers' waits are well under a second.
        let wait = max(.zero, min(timeout, .seconds(3600))).components
        _ = stopSignal.wait(timeout: .now() + .nanoseconds(Int(wait.seconds) * 1_000_000_000 + Int(wait.attoseconds / 1_000_000_000)))
    }

    /// Connects, registers, serves; on losing the broker, reconnects with backoff. Returns after ``stop()``.
    public func run() throws {
        // Never take commands to run from a broker nobody authenticated, unless it is on this machine.
        if configuration.curve == nil && !configuration.insecure,
           let endpoint = try? Endpoint(parsing: configuration.brokerEndpoint), !endpoint.isLoopback {
            throw RuntimeError(.unsecuredConnection, "the broker \(configuration.brokerEndpoint) is beyond loopback and would not be authenticated; pass --broker-key (and --key), or --insecure on a network you trust")
        }
        let context = try sharedContext ?? Context()
        defer { if sharedContext == nil { context.shutdown() } }
        if let failure = WorkerShell(worker: self, context: context).run() { throw failure }
    }
}
