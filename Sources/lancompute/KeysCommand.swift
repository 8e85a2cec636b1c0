// `lancompute keygen` and `lancompute keys list|add|revoke`, and the key options the other commands share.

import ArgumentParser
import Foundation
import LANCompute
import ZeroMQ

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make this machine's CURVE key pair (secret.key, mode 0600, and public.key).",
        discussion: """
            DIR defaults to ~/.lancompute ($LANCOMPUTE_HOME when set). The public key is printed: give it \
            to the broker ('lancompute keys add KEY NAME ROLE' there), and give workers the broker's \
            public.key with --broker-key. An existing key is kept unless --force.
            """)

    @Argument(help: "The key directory (default: ~/.lancompute).")
    var directory: String?

    @Flag(help: "Replace an existing key pair (brokers that knew the old public key will refuse the new one).")
    var force = false

    func run() throws {
        let keys = directory.map(KeyDirectory.init(path:)) ?? .userDefault
        do {
            let pair = try keys.generate(force: force)
            FileHandle.standardError.write(Data("wrote \(keys.secretKeyPath) (0600) and \(keys.publicKeyPath)\n".utf8))
            print(pair.publicKeyZ85)
        } catch {
            fail("error \(error.message)")
        }
    }
}

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List, add and revoke the keys a broker lets in (DIR/authorized_keys).",
        discussion: """
            authorized_keys holds one key per line: KEY [NAME] [ROLE], ROLE one of worker (the default), \
            producer, observer; '#' starts a comment. A running broker rereads it within a second of a \
            change (and on SIGHUP): a revoked key's workers are let go at once. See Docs/security.md.
            """,
        subcommands: [List.self, Add.self, Revoke.self])

    struct Location: ParsableArguments {
        @Option(name: .customLong("keys"), help: "The broker's key directory (default: ~/.lancompute).")
        var directory: String?

        var path: String { (directory.map(KeyDirectory.init(path:)) ?? .userDefault).authorizedKeysPath }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the authorized keys: name, role, key.")
        @OptionGroup var location: Location

        func run() throws {
            let keys: AuthorizedKeys
            do { keys = try AuthorizedKeys.load(path: location.path) } catch { fail("error \(error)") }
            if keys.isEmpty {
                FileHandle.standardError.write(Data("no authorized keys in \(location.path)\n".utf8))
                return
            }
            for entry in keys.entries {
                print("\((entry.name.isEmpty ? "-" : entry.name).padding(toLength: max(16, entry.name.count), withPad: " ", startingAt: 0))  \(entry.role.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))  \(entry.key)")
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Authorize a public key (40 Z85 characters, or a public.key file).")
        @Argument(help: "The key, or a file holding it.")
        var key: String
        @Argument(help: "A name for the key (unique; used by 'keys revoke').")
        var name: String?
        @Option(help: "worker, producer or observer.")
        var role: String = PeerRole.worker.rawValue
        @OptionGroup var location: Location

        func validate() throws {
            guard PeerRole(rawValue: role) != nil else { throw ValidationError("--role must be worker, producer or observer, got '\(role)'") }
            if let name, PeerRole(rawValue: name) != nil || name.contains(where: \.isWhitespace) || name.hasPrefix("#") {
                throw ValidationError("NAME '\(name)' must be one word, not a role, not starting with #")
            }
        }

        func run() throws {
            let bytes: [UInt8]
            do { bytes = try KeyFile.publicKey(key) } catch { fail("error \(error.message)") }
            let entry = AuthorizedKey(key: try Z85.encode(bytes), name: name ?? "", role: PeerRole(rawValue: role)!)
            do { try AuthorizedKeysEditor.add(entry, to: location.path) } catch { fail("error \(error)") }
            FileHandle.standardError.write(Data("authorized \(entry.text) in \(location.path)\n".utf8))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a key by name (or by the key itself); a running broker drops it within a second.")
        @Argument(help: "The key's name, or the key.")
        var name: String
        @OptionGroup var location: Location

        func run() throws {
            let removed: [AuthorizedKey]
            do { removed = try AuthorizedKeysEditor.revoke(name, in: location.path) } catch { fail("error \(error)") }
            guard !removed.isEmpty else {
                fail(RuntimeError(.keyNotFound, "no key named '\(name)' in \(location.path); 'lancompute keys list' shows them"))
            }
            for entry in removed { FileHandle.standardError.write(Data("revoked \(entry.text)\n".utf8)) }
        }
    }
}

/// `--key` and `--broker-key`, for the commands that connect to a broker with keys.
struct ClientKeyOptions: ParsableArguments {
    @Option(help: "This machine's secret key file (default: ~/.lancompute/secret.key, when --broker-key is given).")
    var key: String?

    @Option(name: .customLong("broker-key"), help: "The broker's public key: its 40 Z85 characters, or its public.key file.")
    var brokerKey: String?

    func validate() throws {
        if key != nil && brokerKey == nil { throw ValidationError("--key needs --broker-key: the broker's public key") }
    }

    /// The CURVE client keys, or nil without `--broker-key`; a key that cannot be read ends the command (LC2070).
    var client: (keyPair: CurveKeyPair, serverKey: [UInt8])? {
        guard let brokerKey else { return nil }
        do {
            let serverKey = try KeyFile.publicKey(brokerKey)
            let pair = try KeyFile.readSecret(at: key ?? KeyDirectory.userDefault.secretKeyPath)
            return (pair, serverKey)
        } catch {
            fail("error \(error.message)")
        }
    }

    var curve: CurveSetup? { client.map { CurveSetup(client: $0) } }
}

/// Rereads authorized_keys on SIGHUP, as daemons do with their configuration.
final class ReloadTrap {
    private let source: DispatchSourceSignal

    init(_ action: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "lancompute.sighup"))
        source.setEventHandler(handler: action)
        source.resume()
    }
}

extension BrokerOptions {
    /// The broker's keys from `--keys DIR`, or nil; a key or authorized_keys problem ends the command.
    var security: BrokerSecurity? {
        guard let keys else { return nil }
        do { return try BrokerSecurity.load(directory: KeyDirectory(path: keys)) } catch { fail(error) }
    }
}
