// The runtime and CLI error codes (LC2xxx) and the error that carries one.

/// The runtime and CLI error codes (LC2xxx): problems running a pipeline (endpoints, files, the sink).
///
/// The raw value is the code's number; it is never reused or renumbered, because scripts and CI
/// match on it. `Docs/errors.md` has one row per case, and a test holds the two together.
public enum RuntimeErrorCode: Int, Sendable, CaseIterable, CustomStringConvertible {
    case brokerSetup = 2000
    case dispatchBind = 2001
    case aggregatorStart = 2002
    case sourceBind = 2003
    case sinkUnconfirmed = 2004
    case unencryptedExposure = 2005
    case eventsBind = 2006
    case metricsHTTP = 2007
    case stageCannotRunHere = 2008
    case sourceOpen = 2010
    case sourceRead = 2011
    case binarySourceTruncated = 2012
    case sinkCreate = 2013
    case sinkConnect = 2014
    case sinkWrite = 2015
    case deadLetterOpen = 2016
    case workerStopped = 2020
    case feedInput = 2021
    case feedConnect = 2022
    case feedStalled = 2023
    /// Retired: `feed --broker`, replaced by acknowledged intake. Kept so the number is never reused.
    case feedUnconfirmed = 2024
    case feedNoAnswer = 2025
    case feedNotDispatch = 2026
    case feedUnacknowledged = 2027
    case feedDeadLettered = 2028
    case intakeNotOffered = 2030
    case intakeDraining = 2031
    case intakeBusy = 2032
    case nodesNoAnswer = 2040
    case nodesUnexpectedAnswer = 2041
    case discoveryNoBroker = 2050
    case discoveryUnavailable = 2051
    case journalWrite = 2060
    case journalCorrupt = 2061
    case journalMismatch = 2062
    case sinkBehindJournal = 2063
    case keyFile = 2070
    case authorizedKeysInvalid = 2071
    case peerRefused = 2072
    case brokerNotAuthenticated = 2073
    case keyNotFound = 2074
    case unsecuredConnection = 2075
    case pairingFailed = 2076
    case pairingCodeUnusable = 2077
    case pairingNoAnswer = 2078
    case pairingKeyMismatch = 2079
    case brokerUnresolved = 2080
    case brokerNotZeroMQ = 2081
    case brokerWrongSocket = 2082
    case unknownStage = 2090
    case brokerUnreachable = 2091
    case libzmqTooOld = 2085
    case unclassified = 2099

    /// `LC` and the four digits, as printed: `LC2001`.
    public var code: String { "LC\(rawValue)" }
    public var description: String { code }

    /// What went wrong, in a few words.
    public var title: String {
        switch self {
        case .brokerSetup: "cannot create the broker's ZeroMQ context or sockets"
        case .dispatchBind: "cannot bind the dispatch endpoint"
        case .aggregatorStart: "the aggregator cannot bind or did not start"
        case .sourceBind: "cannot bind the pull source endpoint"
        case .sinkUnconfirmed: "the aggregator did not confirm the sink"
        case .unencryptedExposure: "an unencrypted endpoint reachable from the network"
        case .eventsBind: "cannot bind the events endpoint"
        case .metricsHTTP: "cannot serve --http"
        case .stageCannotRunHere: "a stage cannot run on this machine"
        case .sourceOpen: "cannot open the source file"
        case .sourceRead: "reading the source failed"
        case .binarySourceTruncated: "a binary source is truncated"
        case .sinkCreate: "cannot create the sink file"
        case .sinkConnect: "cannot connect the push sink"
        case .sinkWrite: "writing the sink failed"
        case .deadLetterOpen: "cannot open the dead-letter file"
        case .workerStopped: "the worker stopped on an error"
        case .feedInput: "feed cannot open its input"
        case .feedConnect: "feed cannot connect"
        case .feedStalled: "the pipeline took no more lines"
        case .feedUnconfirmed: "retired: feed --broker did not confirm the feed"
        case .feedNoAnswer: "nothing answered feed"
        case .feedNotDispatch: "feed's endpoint is not a dispatch socket"
        case .feedUnacknowledged: "feed got no acknowledgement"
        case .feedDeadLettered: "fed lines were dead-lettered"
        case .intakeNotOffered: "the pipeline takes no intake"
        case .intakeDraining: "the pipeline is stopping"
        case .intakeBusy: "busy, retry later"
        case .nodesNoAnswer: "the broker did not answer mmi.nodes"
        case .nodesUnexpectedAnswer: "the broker's mmi.nodes answer is not a nodes report"
        case .discoveryNoBroker: "no broker of the cluster was discovered"
        case .discoveryUnavailable: "cannot start looking for brokers"
        case .journalWrite: "cannot create or write the state directory"
        case .journalCorrupt: "the journal is damaged"
        case .journalMismatch: "the state directory belongs to another run"
        case .sinkBehindJournal: "the sink is shorter than the journal says"
        case .keyFile: "a key file cannot be written or read"
        case .authorizedKeysInvalid: "a line of authorized_keys is malformed"
        case .peerRefused: "the broker refused this key"
        case .brokerNotAuthenticated: "the broker could not be authenticated"
        case .keyNotFound: "no authorized key has that name"
        case .unsecuredConnection: "an unauthenticated connection to a broker beyond loopback"
        case .pairingFailed: "pairing failed: the code was wrong or the exchange was altered"
        case .pairingCodeUnusable: "the pairing code expired or was used up"
        case .pairingNoAnswer: "no pairing service answered"
        case .pairingKeyMismatch: "the paired broker key is not the announced one"
        case .brokerUnresolved: "the broker's host name does not resolve"
        case .brokerNotZeroMQ: "the broker's address answers, but not in ZeroMQ"
        case .brokerWrongSocket: "the broker's address is a ZeroMQ socket that takes no workers"
        case .unknownStage: "a stage name the broker's pipeline does not have"
        case .brokerUnreachable: "doctor: the broker did not answer mmi.topology"
        case .libzmqTooOld: "the libzmq this program runs with is older than 4.3.3"
        case .unclassified: "a failure without a code of its own"
        }
    }

    /// What to do about it: the "How to fix" column of `Docs/errors.md`, word for word.
    public var remedy: String {
        switch self {
        case .brokerSetup: "Raise the open-file limit (`ulimit -n`); run `lancompute doctor`."
        case .dispatchBind: "Stop the other broker, or choose another endpoint with `--bind`."
        case .aggregatorStart: "Choose another with `--aggregator`."
        case .sourceBind: "Change the endpoint in the topology."
        case .sinkUnconfirmed: "Check the sink's disk and permissions; the dead-letter file and the log say what was done."
        case .unencryptedExposure: "Pass `--keys DIR` (make keys with `lancompute keygen`; with keys `--http` wants a token), or `--http-token`, bind to `127.0.0.1`, or pass `--insecure` on a network you trust."
        case .eventsBind: "Choose another with `--events`, or `--events none`. (`run` only warns and goes on without a feed.)"
        case .metricsHTTP: "Write `127.0.0.1:9100`; pick a free port."
        case .stageCannotRunHere:
            "Install the program, fix the path (relative to the topology file for `run`), or start `lancompute broker` and serve the stage from a machine that has it."
        case .sourceOpen: "Check the path (relative to the current directory for `--input`, to the topology file for `source.file`)."
        case .sourceRead: "Check the file system; items read so far are processed and reported."
        case .binarySourceTruncated: "Binary sources are 4-byte big-endian lengths, each followed by that many bytes; the items before the cut are processed and reported."
        case .sinkCreate: "Choose a writable path (`--output`)."
        case .sinkConnect: "Write a full endpoint, `tcp://HOST:PORT`."
        case .sinkWrite: "Free space; start the consumer before the run. The run stops and reports what reached the sink."
        case .deadLetterOpen: "Pass `--dead-letter PATH` to a writable place."
        case .workerStopped: "See the message; restart the worker."
        case .feedInput: "Check the path."
        case .feedConnect: "Write a full endpoint, `tcp://HOST:PORT`."
        case .feedStalled: "Check the broker; lines sent so far may or may not have arrived."
        case .feedUnconfirmed: "Drop `--broker` and give `feed` the dispatch endpoint: every line is acknowledged."
        case .feedNoAnswer: "Start the broker; give its dispatch endpoint (`--bind`, default `tcp://127.0.0.1:5555`)."
        case .feedNotDispatch: "Give the broker's dispatch endpoint, e.g. `tcp://head:5555`; or pass `--at-most-once` to PUSH to a pull source."
        case .feedUnacknowledged:
            "Restart the feed from the first unacknowledged line (earlier ones are accepted; later ones may or may not be)."
        case .feedDeadLettered:
            "Split the item, or raise `--max-item-size` on the broker; the lines are in its dead-letter file (`reason_code` `too-large`)."
        case .intakeNotOffered: "Give the topology `source: {pull: ENDPOINT}`."
        case .intakeDraining: "Feed the next run; lines acknowledged before are in the pipeline."
        case .intakeBusy: "Nothing: backpressure. Raise `broker.queue-limit` for more buffering."
        case .nodesNoAnswer: "Start the broker, or give its dispatch endpoint (not the events one)."
        case .nodesUnexpectedAnswer: "Run the same LANCompute version on the broker and the command."
        case .discoveryNoBroker: "Check the broker's `broker announced:` line and its cluster; see Docs/cluster.md#discovery."
        case .discoveryUnavailable: "Free the port or pick `--beacon-port`."
        case .journalWrite: "Check the disk and the permissions of the state directory, or choose another with `--state DIR`."
        case .journalCorrupt:
            "Restore the state directory from a backup, or start over with `--fresh` (the sink is rewritten from the start)."
        case .journalMismatch: "Pass `--fresh` to start over, or `--state DIR` to give this run a state directory of its own."
        case .sinkBehindJournal:
            "The sink was changed or lost data after the crash; restore it, or start over with `--fresh`."
        case .keyFile: "Run `lancompute keygen` (`--force` to replace a key); `chmod 600` the secret key."
        case .authorizedKeysInvalid: "Fix the line: `KEY [NAME] [ROLE]`, a 40-character Z85 key, a unique name, one of worker, producer, observer."
        case .peerRefused: "Add the command's public key to the broker's authorized_keys with the role it needs (`lancompute keys add`)."
        case .brokerNotAuthenticated: "Give the broker's `public.key` with `--broker-key`; check the broker runs with `--keys`."
        case .keyNotFound: "List the keys with `lancompute keys list`; revoke by name or by key."
        case .unsecuredConnection: "Pass `--broker-key` (the broker's key or its file) and `--key FILE`, or `--insecure` on a network you trust."
        case .pairingFailed: "Check the code on the head's screen and run the worker again; a run that fails without a typo means someone is interfering."
        case .pairingCodeUnusable: "Run `lancompute pair` on the head again for a new code (it is valid for `--ttl`, three tries)."
        case .pairingNoAnswer: "Run `lancompute pair` on the head first; check the pairing port (`--pair-port`, default 5671) is reachable."
        case .pairingKeyMismatch: "Run `lancompute pair` with the broker's `--keys DIR`, so both hold the same key."
        case .brokerUnresolved: "Check the spelling; give an address, or `--discover`."
        case .brokerNotZeroMQ: "Give the broker's dispatch port (5555 by default)."
        case .brokerWrongSocket: "Give the dispatch endpoint, not the events (5556) or aggregator (5557) one."
        case .unknownStage: "Use a stage name of the topology the broker runs; the message lists them."
        case .brokerUnreachable: "Start the broker, give its dispatch endpoint (not the events one), and check a firewall lets the port through; with keys, pass --broker-key."
        case .libzmqTooOld: "Install libzmq 4.3.3 or later (Debian 11+ `libzmq5`, Homebrew `zeromq`) and make sure the program loads it (`ldd $(which lancompute)`)."
        case .unclassified: "Report it with the message and the log; it is a defect that the failure has no code."
        }
    }

    /// The case named by `code` (`"LC2001"`), or nil.
    public init?(code: some StringProtocol) {
        guard code.hasPrefix("LC"), let number = Int(code.dropFirst(2)), code.count == 6 else { return nil }
        self.init(rawValue: number)
    }
}

/// A runtime failure that stops a command: its code, and a message saying what and where.
public struct RuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: RuntimeErrorCode
    /// The specifics (endpoint, path, the C error), without the code.
    public let message: String

    public init(_ code: RuntimeErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// For messages that still carry their code as text, `"LC2001: cannot bind …"`: the leading
    /// code is parsed off. Text without a known code is kept whole as ``RuntimeErrorCode/unclassified``,
    /// so a failure is never lost for want of a code.
    public init(_ text: String) {
        if let colon = text.firstIndex(of: ":"), let code = RuntimeErrorCode(code: text[..<colon]) {
            self.init(code, String(text[text.index(after: colon)...].drop { $0 == " " }))
        } else {
            self.init(.unclassified, text)
        }
    }

    /// `LCnnnn: message`, the form logs and the CLI's `error` lines use.
    public var description: String { "\(code.code): \(message)" }
}

/// The error the broker's run throws (typed throws): a ``RuntimeError``.
public typealias BrokerError = RuntimeError
