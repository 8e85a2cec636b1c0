// `lancompute worker --broker EP`: serves every stage this machine can, for whichever pipeline the broker runs.

import ArgumentParser
import Foundation
import LANCompute
import Logging
import ZeroMQ

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve pipeline stages for a broker; reconnects whenever the broker goes away.",
        discussion: """
            The worker asks the broker for the topology, then registers for every stage it can serve: \
            builtins always, exec stages when the command resolves on this machine (relative to --workdir), \
            and only stages whose 'requires' this machine meets. The scripts an exec command names under the \
            topology's directory come from the broker, checked by SHA-256 and kept in --cache, so nothing need \
            be copied here by hand. It tells the broker why it skips a stage. On SIGINT or SIGTERM it takes no new items, \
            finishes and answers the items it holds for up to --grace seconds, hands the rest back and \
            disconnects; a second signal hands everything back at once.

            With --yield-to-owner the machine's owner comes first: while the rest of the machine keeps more \
            than --owner-threshold of its cores busy for 3 s, the worker takes no new items, finishes those \
            running and hands back those not started; it takes items again once that load has stayed below \
            the threshold for 10 s.
            """
    )

    @Option(help: ArgumentHelp("The broker's dispatch endpoint: tcp://HOST:PORT, or HOST alone (port 5555), or HOST:PORT.", valueName: "endpoint"))
    var broker: String = "tcp://127.0.0.1:5555"

    @Option(help: "Handler slots per stage, over the topology's replicas (default: a stage's replicas; without, one per core for exec stages and one for builtins).")
    var slots: Int?

    @Option(name: .customLong("label"), help: "A K=V label announced to the broker (repeatable).")
    var labels: [String] = []

    @Option(help: "Serve only these stages (comma-separated).")
    var stages: String?

    @Option(help: "Directory exec commands resolve against (default: the current directory).")
    var workdir: String?

    @Option(help: "Directory for stage files fetched from the broker (default: ~/.lancompute/cache, or $LANCOMPUTE_HOME/cache).")
    var cache: String?

    @Option(help: "Seconds a stopped worker lets the items it holds finish before handing the rest back.")
    var grace: Double = 10

    static let defaultOwnerThreshold = 0.5

    @Flag(name: .customLong("yield-to-owner"), help: "Take no new items while the rest of this machine is busy (see --owner-threshold).")
    var yieldToOwner = false

    @Option(name: .customLong("owner-threshold"), help: ArgumentHelp("With --yield-to-owner: the share of this machine's cores other processes may keep busy before the worker yields, above 0 and at most 1 (default: 0.5).", valueName: "fraction"))
    var ownerThreshold: Double?

    @OptionGroup var keys: ClientKeyOptions

    @Flag(help: "Connect to a broker beyond loopback without --broker-key: it is not authenticated, and may make this machine run any command.")
    var insecure = false

    @Option(name: .customLong("allow-exec"), help: "Run only exec programs matching this glob (repeatable): with a /, the resolved path; without, the program's name.")
    var allowExec: [String] = []

    @Option(help: "Pair with the head first, with the code 'lancompute pair' printed there (e.g. 428-913): makes this machine's key if missing, stores the broker's key, then serves.")
    var pair: String?

    @Option(name: .customLong("pair-port"), help: "With --pair: the head's pairing port.")
    var pairPort: UInt16 = PairingListener.defaultPort

    @OptionGroup var logging: LoggingOptions
    @OptionGroup var discovery: DiscoverOptions

    mutating func validate() throws {
        broker = Endpoint.expandingShorthand(broker, defaultPort: 5555)
        try checkEndpoint(broker, option: "--broker")
        if let pair {
            guard PairingCode(parsing: pair) != nil else { throw ValidationError("--pair '\(pair)' is not a pairing code: six digits, e.g. 428-913") }
            if keys.brokerKey != nil { throw ValidationError("--pair and --broker-key contradict each other: pairing brings the broker's key") }
            if insecure { throw ValidationError("--pair and --insecure contradict each other: a paired worker authenticates its broker") }
        }
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
        if let ownerThreshold {
            guard yieldToOwner else { throw ValidationError("--owner-threshold needs --yield-to-owner") }
            guard ownerThreshold > 0 && ownerThreshold <= 1 else {
                throw ValidationError("--owner-threshold must be above 0 and at most 1 (a share of this machine's cores), got \(ownerThreshold)")
            }
        }
        for label in labels where !label.contains("=") || label.hasPrefix("=") {
            throw ValidationError("--label takes K=V, got '\(label)'")
        }
    }

    func run() throws {
        logging.bootstrap(default: .info)
        var labelValues: [String: String] = [:]
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            labelValues[String(parts[0])] = String(parts[1])
        }
        let directory = workdir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? FileManager.default.currentDirectoryPath
        var configuration = WorkerConfiguration(
            brokerEndpoint: broker, slots: slots, labels: labelValues,
            stages: stages.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) },
            workingDirectory: directory, stopGrace: .milliseconds(Int(grace * 1000)))
        configuration.curve = pair != nil ? paired() : keys.client ?? storedKeys()
        configuration.insecure = insecure
        configuration.stageFileCache = cache.map { StageFileCache(directory: URL(fileURLWithPath: $0).standardizedFileURL.path) }
            ?? .userDefault
        if !allowExec.isEmpty { configuration.execPolicy = ExecPolicy(patterns: allowExec) }
        if yieldToOwner { configuration.ownerThreshold = (ownerThreshold ?? Self.defaultOwnerThreshold) * Double(configuration.cores) }
        if discovery.discover { return discovery.serve(configuration) }
        checkResolves(broker)
        let worker = Worker(configuration: configuration)
        let trap = SignalTrap(again: { worker.stopAtOnce() }) { worker.stop() }
        do {
            try worker.run()
        } catch let error as RuntimeError {
            fail(error)
        } catch {
            fail("error LC2020: the worker stopped: \(error)")
        }
        _ = trap
    }

    /// The key directory: the one holding `--key`, else the default.
    private var keyDirectory: KeyDirectory {
        keys.key.map { KeyDirectory(path: ($0 as NSString).deletingLastPathComponent) } ?? .userDefault
    }

    /// `--pair CODE`: runs the exchange with the head (found by discovery, or at `--broker`'s host)
    /// and stores the broker's key; exits on failure with nothing written.
    private func paired() -> (keyPair: CurveKeyPair, serverKey: [UInt8]) {
        let code = PairingCode(parsing: pair ?? "")!
        let directory = keyDirectory
        let keyPair: CurveKeyPair
        let isNew: Bool
        do { (keyPair, isNew) = try directory.keyPairOrNew() } catch { fail("error \(error.message)") }
        let host: String
        var expected: String?
        var dispatch = broker
        if discovery.discover {
            let announced = discovery.announced()
            host = announced.host
            expected = announced.announcement.keyFingerprint
            dispatch = announced.dispatchEndpoint
        } else {
            guard let parsed = try? Endpoint(parsing: broker), let name = parsed.host, parsed.transport == .tcp else {
                fail(RuntimeError(.pairingNoAnswer, "--pair needs a tcp:// --broker (or --discover) to find the head, got \(broker)"))
            }
            host = name
        }
        let endpoint = host.contains(":") ? "tcp://[\(host)]:\(pairPort)" : "tcp://\(host):\(pairPort)"
        let result: PairingWorker.Paired
        do {
            result = try PairingClient.pair(endpoint: endpoint, code: code, keyPair: keyPair, name: NodeInfo.hostName,
                                            expectedFingerprint: expected)
        } catch {
            fail(error)
        }
        // Both confirmations verified: only now is anything written.
        do {
            if isNew {
                try directory.save(keyPair)
                FileHandle.standardError.write(Data("lancompute worker: made this machine's key pair in \(directory.path)\n".utf8))
            }
            try directory.storeBrokerKey(result.brokerKey)
        } catch {
            fail("error \(error.message)")
        }
        FileHandle.standardError.write(Data("""
            lancompute worker: paired with \(result.headName) at \(endpoint): authorized there as \(result.authorizedName); \
            broker key \(KeyFingerprint.of(result.brokerKey)) stored in \(directory.brokerKeyPath)

            """.utf8))
        // The head has just written authorized_keys, and the broker rereads it within a second:
        // until then its ZAP handler would refuse this key, which ends a worker (LC2072).
        let curve = CurveSetup(client: (keyPair, result.brokerKey))
        for _ in 0..<10 {
            if BrokerProbe.answers(dispatch, within: .seconds(1), curve: curve) { break }
        }
        return (keyPair, result.brokerKey)
    }

    /// A paired machine's keys when no --broker-key is given: its secret key and the stored broker
    /// key, for a broker beyond loopback or a discovered one (a local broker without keys still
    /// takes a worker without them).
    private func storedKeys() -> (keyPair: CurveKeyPair, serverKey: [UInt8])? {
        guard !insecure, keys.brokerKey == nil else { return nil }
        if !discovery.discover, let parsed = try? Endpoint(parsing: broker), parsed.isLoopback || parsed.transport != .tcp { return nil }
        let directory = keyDirectory
        guard let brokerKey = directory.storedBrokerKey else { return nil }
        do { return (try KeyFile.readSecret(at: keys.key ?? directory.secretKeyPath), brokerKey) } catch { fail("error \(error.message)") }
    }
}
