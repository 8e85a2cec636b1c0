// What a broker with keys holds (its key pair, authorized_keys and how to notice it changed), and which message each role may send.

import Foundation
import ZeroMQ

/// A broker's keys: its own CURVE key pair and the authorized_keys file it lets peers in by.
public struct BrokerSecurity: Sendable {
    public let keyPair: CurveKeyPair
    public let authorizedKeysPath: String
    /// The keys as read at start-up; the broker reloads the file when it changes and on SIGHUP.
    public let authorizedKeys: AuthorizedKeys

    public init(keyPair: CurveKeyPair, authorizedKeysPath: String, authorizedKeys: AuthorizedKeys) {
        self.keyPair = keyPair
        self.authorizedKeysPath = authorizedKeysPath
        self.authorizedKeys = authorizedKeys
    }

    /// Reads `DIR/secret.key` and `DIR/authorized_keys`; the error is one line naming the file (and line).
    public static func load(directory: KeyDirectory) throws(RuntimeError) -> BrokerSecurity {
        let keyPair: CurveKeyPair
        do { keyPair = try KeyFile.readSecret(at: directory.secretKeyPath) } catch { throw RuntimeError(error.message) }
        let keys: AuthorizedKeys
        do { keys = try AuthorizedKeys.load(path: directory.authorizedKeysPath) } catch { throw RuntimeError(error.description) }
        return BrokerSecurity(keyPair: keyPair, authorizedKeysPath: directory.authorizedKeysPath, authorizedKeys: keys)
    }
}

/// Notices that a file changed, by its modification time, size and inode (a rename gives a new
/// inode even within the same second). One `stat` per check: cheap enough for once a second.
struct FileChangeWatcher {
    let path: String
    private var last: Signature?

    struct Signature: Equatable {
        var modified: Int
        var modifiedNanoseconds: Int
        var size: Int64
        var inode: UInt64
    }

    init(path: String) {
        self.path = path
        last = Self.signature(of: path)
    }

    /// Whether the file differs from the last time this was asked (appearing and disappearing count).
    mutating func changed() -> Bool {
        let now = Self.signature(of: path)
        defer { last = now }
        return now != last
    }

    static func signature(of path: String) -> Signature? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if canImport(Darwin)
        let time = info.st_mtimespec
        #else
        let time = info.st_mtim
        #endif
        return Signature(modified: Int(time.tv_sec), modifiedNanoseconds: Int(time.tv_nsec), size: Int64(info.st_size), inode: UInt64(info.st_ino))
    }
}

/// What a message on the dispatch ROUTER asks to do, for the check against its sender's role.
public enum DispatchAccess: Sendable, Equatable {
    /// Any MDPW01 message: registering for a stage, heartbeats, replies (items and their outputs).
    case workerProtocol
    /// What a worker needs to start a session: `mmi.topology` (the stages, their commands and
    /// endpoints), `mmi.file` (the stage files) and `mmi.unserved` (the stages it cannot serve, and why).
    case topology
    /// `mmi.feed`: a feeder asking whether its lines arrived.
    case feedStatus
    /// A client request to a stage: it puts an item into the pipeline.
    case stageRequest
    /// `mmi.service`, `mmi.nodes` and unknown `mmi.*`: facts about the cluster, nothing that moves items.
    case clusterView

    public static func of(service: String) -> DispatchAccess {
        switch service {
        case "mmi.topology", "mmi.file", "mmi.unserved": .topology
        case "mmi.feed": .feedStatus
        case let name where name.hasPrefix("mmi."): .clusterView
        default: .stageRequest
        }
    }

    /// The roles that may do this.
    public var roles: Set<PeerRole> {
        switch self {
        case .workerProtocol, .topology: [.worker]
        case .feedStatus, .stageRequest: [.producer]
        case .clusterView: Set(PeerRole.allCases)
        }
    }

    /// Nil when the sender with `userID` (ZAP's User-Id: its Z85 key) may do this under `keys`,
    /// else why not. With no keys configured there is nothing to check (loopback or `--insecure`).
    public func refusal(userID: String?, keys: AuthorizedKeys?) -> String? {
        guard let keys else { return nil }
        guard let userID, !userID.isEmpty else {
            // Only inproc peers (the workers of `lancompute run`, in this very process) have no User-Id
            // on a broker with keys: every TCP connection went through CURVE and the ZAP handler.
            return nil
        }
        guard let entry = keys.entry(for: userID) else { return "key \(userID) is no longer authorized" }
        guard roles.contains(entry.role) else {
            return "key \(userID)\(entry.name.isEmpty ? "" : " (\(entry.name))") is a \(entry.role.rawValue) key; \(self) needs a \(roles.map(\.rawValue).sorted().joined(separator: " or ")) key"
        }
        return nil
    }
}
