// Stage files on the wire: the manifest beside the topology in `mmi.topology`, and the `mmi.file` request and reply.

import Foundation

/// A file an exec stage's command names, served by the broker by its SHA-256 (Docs/cluster.md, "Stage files").
public struct StageFile: Codable, Sendable, Equatable, Hashable {
    /// The command argument that names the file, as the topology writes it (`scripts/parse.py`).
    public var path: String
    /// The SHA-256 of the content: 64 lowercase hexadecimal digits.
    public var sha256: String
    public var size: Int
    /// The file is the program itself (argv[0]) and executable on the broker: the worker's copy is made executable too.
    public var executable: Bool

    public init(path: String, sha256: String, size: Int, executable: Bool) {
        self.path = path
        self.sha256 = sha256
        self.size = size
        self.executable = executable
    }

    /// The name the worker's copy keeps, so an interpreter sees the same file name and extension.
    public var fileName: String { (path as NSString).lastPathComponent }
}

/// The `mmi.file` service and the manifest key of the `mmi.topology` JSON.
public enum StageFiles {
    public static let service = "mmi.file"
    /// The largest file the broker ships; a larger one must exist on every worker.
    public static let maxFileSize = 8 << 20
    /// The most the broker holds for one topology's files.
    public static let maxTotalSize = 64 << 20

    /// The stage files of the `mmi.topology` JSON, by stage name (empty from a broker that ships none).
    public static func manifest(fromTopologyJSON json: [UInt8]) -> [String: [StageFile]] {
        struct Extras: Decodable { var stageFiles: [String: [StageFile]]? }
        return (try? JSONDecoder().decode(Extras.self, from: Data(json)))?.stageFiles ?? [:]
    }

    /// Whether `text` is a SHA-256 as the manifest writes it.
    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

/// The broker's answer to `mmi.file`: body `200`, the digest, the content; or a status and the digest asked for.
public struct StageFileReply: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        case found = "200"
        /// The request is not a digest.
        case malformed = "400"
        /// No file of this topology's stages has that digest.
        case notFound = "404"
    }

    public var status: Status
    public var sha256: String
    public var content: [UInt8]

    public init(status: Status, sha256: String, content: [UInt8] = []) {
        self.status = status
        self.sha256 = sha256
        self.content = content
    }

    public var frames: [[UInt8]] {
        status == .found ? [Array(status.rawValue.utf8), Array(sha256.utf8), content] : [Array(status.rawValue.utf8), Array(sha256.utf8)]
    }

    /// Parses a reply body; nil for anything that is not one.
    public init?(body: [[UInt8]]) {
        guard body.count >= 2, let status = Status(rawValue: String(decoding: body[0], as: UTF8.self)) else { return nil }
        let digest = String(decoding: body[1], as: UTF8.self)
        switch status {
        case .found:
            guard body.count == 3, StageFiles.isDigest(digest) else { return nil }
            self.init(status: status, sha256: digest, content: body[2])
        case .malformed, .notFound:
            guard body.count == 2 else { return nil }
            self.init(status: status, sha256: digest)
        }
    }
}
