// The worker's cache of stage files fetched from the broker: one directory per SHA-256, and commands rewritten to use them.

import Foundation

/// Stage files on this machine, at `DIRECTORY/SHA256/NAME`: the content decides where a file lives,
/// so two brokers or two versions of a script never overwrite each other, and a file already here is
/// fetched no more (it is hashed again before each use).
public struct StageFileCache: Sendable, Equatable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// `~/.lancompute/cache`, or `$LANCOMPUTE_HOME/cache`.
    public static var userDefault: StageFileCache {
        StageFileCache(directory: (KeyDirectory.userDefault.path as NSString).appendingPathComponent("cache"))
    }

    /// Where `file` lives in the cache.
    public func location(of file: StageFile) -> String {
        "\(directory)/\(file.sha256)/\(file.fileName)"
    }

    /// Whether the cache holds `file` with the right content (and, for a program, executable).
    public func holds(_ file: StageFile) -> Bool {
        let path = location(of: file)
        guard let data = FileManager.default.contents(atPath: path), data.count == file.size,
              SHA256.hexDigest([UInt8](data)) == file.sha256 else { return false }
        return !file.executable || access(path, X_OK) == 0
    }

    /// Writes `content` (already checked against `file.sha256`) through a temporary file and a rename,
    /// so a worker killed mid-write never leaves a partial file under the final name. Nil: done; else why not.
    public func store(_ file: StageFile, content: [UInt8]) -> String? {
        let path = location(of: file)
        let folder = (path as NSString).deletingLastPathComponent
        let manager = FileManager.default
        do {
            try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let temporary = "\(folder)/.\(file.fileName).\(UUID().uuidString)"
            guard manager.createFile(atPath: temporary, contents: Data(content), attributes: [.posixPermissions: file.executable ? 0o755 : 0o644]) else {
                return "cannot write \(temporary)"
            }
            guard rename(temporary, path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? manager.removeItem(atPath: temporary)
                return "cannot rename \(temporary) to \(path): \(reason)"
            }
            return nil
        } catch {
            return "cannot create \(folder): \(error.localizedDescription)"
        }
    }

    /// `spec` with each command argument that names one of `files` replaced by the cached copy's path.
    public func localizing(_ spec: StageSpec, files: [StageFile]) -> StageSpec {
        guard case .exec(var exec) = spec.handler, !files.isEmpty else { return spec }
        let byPath = Dictionary(files.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        exec.command = exec.command.map { argument in byPath[argument].map(location(of:)) ?? argument }
        var copy = spec
        copy.handler = .exec(exec)
        return copy
    }
}
