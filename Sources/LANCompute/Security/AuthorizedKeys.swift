// The broker's authorized_keys: parsing (errors name file and line), roles, and rewriting it for add and revoke.

import Foundation

/// What a key may do on a broker's sockets (see Docs/security.md).
public enum PeerRole: String, Sendable, CaseIterable, Codable {
    /// Registers for stages (receives items, runs their handlers) and PUSHes final outputs.
    case worker
    /// Feeds items into a `pull` source (`lancompute feed`) and sends client requests to stages.
    case producer
    /// Reads the events feed, `mmi.nodes` and `mmi.service`; nothing that moves items.
    case observer
}

/// One authorized key: its Z85 text (as ZAP's User-Id carries it), a name, a role.
public struct AuthorizedKey: Sendable, Equatable {
    public var key: String
    /// Empty when the line names none; `keys revoke` then takes the key itself.
    public var name: String
    public var role: PeerRole
    /// The line it was read from (1-based; 0 for a key added in code).
    public var line: Int

    public init(key: String, name: String = "", role: PeerRole = .worker, line: Int = 0) {
        self.key = key
        self.name = name
        self.role = role
        self.line = line
    }

    /// As a line of the file: `KEY [NAME] [ROLE]`.
    public var text: String { ([key] + (name.isEmpty ? [] : [name]) + [role.rawValue]).joined(separator: " ") }
}

/// `authorized_keys`: one key per line, `KEY [NAME] [ROLE]`; a word starting with `#` starts a comment
/// (`#` is one of Z85's characters, but never the first of a key's); blank lines are skipped.
///
/// ROLE is `worker` (the default), `producer` or `observer`; NAME is any other word (no spaces),
/// unique in the file. A line that breaks these rules fails the whole file (LC2071), naming the
/// file, the line and what is wrong: a broker never runs with half of the keys its owner meant.
public struct AuthorizedKeys: Sendable, Equatable {
    public private(set) var entries: [AuthorizedKey]
    private var byKey: [String: Int]

    public init(_ entries: [AuthorizedKey] = []) {
        self.entries = []
        self.byKey = [:]
        for entry in entries { add(entry) }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The entry for a Z85 key, as ZAP's User-Id gives it; nil when the key is not authorized.
    public func entry(for key: String) -> AuthorizedKey? { byKey[key].map { entries[$0] } }

    /// The role of a Z85 key; nil when it is not authorized.
    public func role(of key: String) -> PeerRole? { entry(for: key)?.role }

    private mutating func add(_ entry: AuthorizedKey) {
        if let index = byKey[entry.key] { entries[index] = entry; return }
        byKey[entry.key] = entries.count
        entries.append(entry)
    }

    /// Parses the text of `file` (used in error messages only).
    public init(parsing text: String, file: String) throws(AuthorizedKeysError) {
        var entries: [AuthorizedKey] = []
        var names: [String: Int] = [:]
        var keys: [String: Int] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            func fail(_ problem: String) -> AuthorizedKeysError { AuthorizedKeysError(file: file, line: number, problem: problem) }
            // `#` is a Z85 character, so it starts a comment only at the start of a word (a key
            // never starts with it: the first character of 32 bytes of Z85 is at most the 83rd).
            var words = raw.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let key = words.first else { continue }
            let isKey = KeyFile.decodePublic(key) != nil
            if !isKey && key.hasPrefix("#") { continue }
            if let comment = words.dropFirst().firstIndex(where: { $0.hasPrefix("#") }) { words.removeSubrange(comment...) }
            guard isKey else {
                throw fail("'\(key.prefix(48))' is not a 40-character Z85 public key")
            }
            if let earlier = keys[key] { throw fail("the key is already on line \(earlier)") }
            var name = ""
            var role: PeerRole?
            for word in words.dropFirst() {
                if let known = PeerRole(rawValue: word) {
                    if role != nil { throw fail("two roles; a key has one of worker, producer, observer") }
                    role = known
                } else {
                    if !name.isEmpty { throw fail("'\(word)' is neither a role (worker, producer, observer) nor the only name") }
                    if let earlier = names[word] { throw fail("the name '\(word)' is already used on line \(earlier)") }
                    name = word
                }
            }
            keys[key] = number
            if !name.isEmpty { names[name] = number }
            entries.append(AuthorizedKey(key: key, name: name, role: role ?? .worker, line: number))
        }
        self.init(entries)
    }

    /// Reads `path`; a missing file is an empty set (no peer is let in), any other failure an error.
    public static func load(path: String) throws(AuthorizedKeysError) -> AuthorizedKeys {
        guard FileManager.default.fileExists(atPath: path) else { return AuthorizedKeys() }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AuthorizedKeysError(file: path, line: 0, problem: "cannot be read")
        }
        return try AuthorizedKeys(parsing: text, file: path)
    }

    /// Keys whose access ends or shrinks going from `self` to `newer`: removed, or given another role.
    public func revoked(in newer: AuthorizedKeys) -> Set<String> {
        Set(entries.filter { newer.role(of: $0.key) != $0.role }.map(\.key))
    }
}

/// A malformed authorized_keys file: which file, which line, what is wrong (LC2071).
public struct AuthorizedKeysError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// 1-based; 0 when the file as a whole is the problem.
    public let line: Int
    public let problem: String

    public var description: String {
        line > 0 ? "LC2071: \(file):\(line): \(problem)" : "LC2071: \(file): \(problem)"
    }
}

/// Edits an authorized_keys file in place, keeping its comments and the lines it does not touch.
public enum AuthorizedKeysEditor {
    /// Appends `entry`; refuses a key or a name the file has already.
    public static func add(_ entry: AuthorizedKey, to path: String) throws(AuthorizedKeysError) {
        let current = try AuthorizedKeys.load(path: path)
        if let existing = current.entry(for: entry.key) {
            throw AuthorizedKeysError(file: path, line: existing.line, problem: "the key is already authorized")
        }
        if !entry.name.isEmpty, let existing = current.entries.first(where: { $0.name == entry.name }) {
            throw AuthorizedKeysError(file: path, line: existing.line, problem: "the name '\(entry.name)' is already used")
        }
        var text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "# lancompute authorized_keys: KEY [NAME] [ROLE] (worker, producer, observer)\n"
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        try replace(path, with: text + entry.text + "\n")
    }

    /// Removes the keys named `nameOrKey` (a name, or the Z85 key itself); returns what was removed.
    public static func revoke(_ nameOrKey: String, in path: String) throws(AuthorizedKeysError) -> [AuthorizedKey] {
        let current = try AuthorizedKeys.load(path: path)
        let removed = current.entries.filter { $0.name == nameOrKey || $0.key == nameOrKey }
        guard !removed.isEmpty else { return [] }
        let lines = Set(removed.map(\.line))
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var kept = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .filter { !lines.contains($0.offset + 1) }.map { String($0.element) }
        if kept.last == "" { kept.removeLast() }
        try replace(path, with: kept.joined(separator: "\n") + "\n")
        return removed
    }

    /// Writes through a temporary file and a rename, so a broker reloading at that moment reads the
    /// old file or the new one, never half of one.
    private static func replace(_ path: String, with text: String) throws(AuthorizedKeysError) {
        let temporary = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            chmod(temporary, 0o644)
            guard rename(temporary, path) == 0 else {
                throw AuthorizedKeysError(file: path, line: 0, problem: "cannot be replaced: \(String(cString: strerror(errno)))")
            }
        } catch let error as AuthorizedKeysError {
            throw error
        } catch {
            throw AuthorizedKeysError(file: path, line: 0, problem: "cannot be written: \(error.localizedDescription)")
        }
    }
}
