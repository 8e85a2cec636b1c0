// `lancompute pair`: on the head, a one-time code that lets one new worker into authorized_keys.

import ArgumentParser
import Foundation
import LANCompute
import ZeroMQ

struct PairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Print a one-time code that authorizes one new worker ('lancompute worker --pair CODE' there).",
        discussion: """
            Listens on the pairing port until a worker proves the code (CPace: a password-authenticated key \
            exchange), then appends the worker's public key to DIR/authorized_keys with role worker, under \
            the worker's host name (or --name), and exits; a running broker with --keys DIR lets it in \
            within a second. The worker receives the broker's public key. The code is valid for --ttl and \
            three tries. The key pair DIR/secret.key is made if missing. See Docs/security.md.
            """)

    @Option(name: .customLong("keys"), help: "The broker's key directory (default: ~/.lancompute).")
    var directory: String?

    @Option(help: "How long the code is valid, e.g. 2m or 90s.")
    var ttl: String = "2m"

    @Option(help: "The TCP port to listen on for the worker.")
    var port: UInt16 = PairingListener.defaultPort

    @Option(help: "The address to listen on.")
    var bind: String = "0.0.0.0"

    @Option(help: "Authorize the worker under this name instead of its host name.")
    var name: String?

    func validate() throws {
        guard let lifetime = DurationLiteral.parse(ttl), lifetime > .zero, lifetime <= .seconds(3600) else {
            throw ValidationError("--ttl '\(ttl)' must be a duration (90s, 2m) of at most 1h")
        }
        if let name, PeerRole(rawValue: name) != nil || name.contains(where: \.isWhitespace) || name.hasPrefix("#") || name.isEmpty {
            throw ValidationError("--name '\(name)' must be one word, not a role, not starting with #")
        }
    }

    var lifetime: Duration { DurationLiteral.parse(ttl) ?? .seconds(120) }

    func run() throws {
        let keys = directory.map(KeyDirectory.init(path:)) ?? .userDefault
        let pair: CurveKeyPair
        do {
            let (found, isNew) = try keys.keyPairOrNew()
            pair = found
            if isNew {
                try keys.save(found)
                FileHandle.standardError.write(Data("made the broker's key pair \(keys.secretKeyPath) (0600) and \(keys.publicKeyPath)\n".utf8))
            }
        } catch {
            fail("error \(error.message)")
        }
        // A malformed authorized_keys would refuse the write at the end: say so before a code is shown.
        do { _ = try AuthorizedKeys.load(path: keys.authorizedKeysPath) } catch { fail("error \(error)") }
        let listener = PairingListener(keys: keys, keyPair: pair, headName: NodeInfo.hostName,
                                       nameOverride: name, endpoint: "tcp://\(bind):\(port)", lifetime: lifetime)
        let authorized: PairingListener.Authorized
        do {
            authorized = try listener.run(onReady: { endpoint in
                // Unbuffered: whoever reads the code off a pipe sees it now, not at exit.
                FileHandle.standardOutput.write(Data("pairing code: \(listener.code)\n".utf8))
                FileHandle.standardError.write(Data("""
                    on the new machine run: lancompute worker --pair \(listener.code) --discover (or --broker tcp://\(NodeInfo.hostName):5555)
                    valid for \(DurationLiteral.format(lifetime)) and three tries; listening on \(endpoint); broker key \(KeyFingerprint.of(pair.publicKey))

                    """.utf8))
            }, note: { text in
                FileHandle.standardError.write(Data("lancompute pair: \(text)\n".utf8))
            })
        } catch {
            fail(error)
        }
        FileHandle.standardOutput.write(Data("paired: authorized \(authorized.entry.name) (role worker\(authorized.address.map { ", from \($0)" } ?? "")) in \(keys.authorizedKeysPath)\n".utf8))
    }
}
