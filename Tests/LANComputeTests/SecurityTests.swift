// Keys, authorized_keys, the ZAP decision, role checks, exec policy and what of a topology leaves the broker: pure, no sockets but the key pair.

import Foundation
import Testing
import ZeroMQ
@testable import LANCompute

@Suite struct AuthorizedKeysTests {
    static func key() throws -> String { try CurveKeyPair.generate().publicKeyZ85 }

    @Test func parsesKeysNamesRolesAndComments() throws {
        let (a, b, c) = (try Self.key(), try Self.key(), try Self.key())
        let keys = try AuthorizedKeys(parsing: "# head node's keys\n\n\(a)\n\(b) gpu-box producer  # feeds\n\(c) observer\n", file: "ak")
        #expect(keys.entries.map(\.key) == [a, b, c])
        #expect(keys.entry(for: a) == AuthorizedKey(key: a, name: "", role: .worker, line: 3))
        #expect(keys.entry(for: b) == AuthorizedKey(key: b, name: "gpu-box", role: .producer, line: 4))
        #expect(keys.role(of: c) == .observer)
        #expect(keys.role(of: String(repeating: "x", count: 40)) == nil)
    }

    @Test func aKeyMayHoldTheCommentCharacter() throws {
        // `#` is a Z85 character: inside a key it starts no comment; a word starting with it does.
        var pair = try CurveKeyPair.generate()
        for _ in 0..<10_000 where !pair.publicKeyZ85.dropFirst().contains("#") { pair = try CurveKeyPair.generate() }
        try #require(pair.publicKeyZ85.contains("#"))
        let keys = try AuthorizedKeys(parsing: "\(pair.publicKeyZ85) hashy #worker observer\n# \(try Self.key()) commented out\n", file: "ak")
        #expect(keys.entries == [AuthorizedKey(key: pair.publicKeyZ85, name: "hashy", role: .worker, line: 1)])
    }

    @Test func everyMalformedLineNamesTheFileTheLineAndTheProblem() throws {
        let (a, b) = (try Self.key(), try Self.key())
        let cases: [(String, String)] = [
            ("\(a) w\nnot-a-key\n", "ak:2: 'not-a-key' is not a 40-character Z85 public key"),
            ("\(a) one\n\(b) one\n", "ak:2: the name 'one' is already used on line 1"),
            ("\(a)\n\n\(a) again\n", "ak:3: the key is already on line 1"),
            ("\(a) worker observer\n", "ak:1: two roles; a key has one of worker, producer, observer"),
            ("\(a) first second\n", "ak:1: 'second' is neither a role (worker, producer, observer) nor the only name"),
        ]
        for (text, expected) in cases {
            #expect(throws: AuthorizedKeysError.self) { try AuthorizedKeys(parsing: text, file: "ak") }
            do {
                _ = try AuthorizedKeys(parsing: text, file: "ak")
            } catch {
                #expect(error.description == "LC2071: \(expected)")
            }
        }
    }

    @Test func revokedKeysAreTheRemovedOnesAndThoseWhoseRoleChanged() throws {
        let (a, b, c) = (try Self.key(), try Self.key(), try Self.key())
        let before = AuthorizedKeys([AuthorizedKey(key: a), AuthorizedKey(key: b), AuthorizedKey(key: c, role: .producer)])
        let after = AuthorizedKeys([AuthorizedKey(key: a), AuthorizedKey(key: b, role: .observer), AuthorizedKey(key: c, role: .producer)])
        #expect(before.revoked(in: after) == [b])
        #expect(before.revoked(in: AuthorizedKeys()) == [a, b, c])
    }

    @Test func theEditorAddsAndRevokesKeepingTheRest() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ak-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/authorized_keys"
        let (a, b) = (try Self.key(), try Self.key())
        try "# mine\n\(a) keep\n".write(toFile: path, atomically: true, encoding: .utf8)
        try AuthorizedKeysEditor.add(AuthorizedKey(key: b, name: "gone", role: .observer), to: path)
        #expect(throws: AuthorizedKeysError.self) { try AuthorizedKeysEditor.add(AuthorizedKey(key: b, name: "x"), to: path) }
        #expect(try AuthorizedKeys.load(path: path).role(of: b) == .observer)
        #expect(try AuthorizedKeysEditor.revoke("gone", in: path).map(\.key) == [b])
        #expect(try AuthorizedKeysEditor.revoke("gone", in: path).isEmpty)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "# mine\n\(a) keep\n")
    }
}

@Suite struct KeyFileTests {
    func directory() -> KeyDirectory {
        KeyDirectory(path: FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path)
    }

    @Test func generateWritesTheModesAndReadsBack() throws {
        let keys = directory()
        defer { try? FileManager.default.removeItem(atPath: keys.path) }
        let pair = try keys.generate(force: false)
        var info = stat()
        #expect(stat(keys.secretKeyPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(keys.publicKeyPath, &info) == 0 && info.st_mode & 0o777 == 0o644)
        #expect(try KeyFile.readSecret(at: keys.secretKeyPath) == pair)
        #expect(try KeyFile.publicKey(keys.publicKeyPath) == pair.publicKey)
        #expect(try KeyFile.publicKey(pair.publicKeyZ85) == pair.publicKey)
        #expect(throws: KeyError.self) { try keys.generate(force: false) }
        #expect(try keys.generate(force: true) != pair)
    }

    @Test func aSecretKeyOthersCanReadIsRefused() throws {
        let keys = directory()
        defer { try? FileManager.default.removeItem(atPath: keys.path) }
        _ = try keys.generate(force: false)
        chmod(keys.secretKeyPath, 0o644)
        do {
            _ = try KeyFile.readSecret(at: keys.secretKeyPath)
            Issue.record("a world-readable secret key was accepted")
        } catch {
            #expect(error.message.contains("chmod 600"))
        }
    }
}

@Suite struct AccessTests {
    static let worker = try! CurveKeyPair.generate()
    static let observer = try! CurveKeyPair.generate()
    static let producer = try! CurveKeyPair.generate()
    static let keys = AuthorizedKeys([
        AuthorizedKey(key: worker.publicKeyZ85, name: "w", role: .worker),
        AuthorizedKey(key: observer.publicKeyZ85, name: "o", role: .observer),
        AuthorizedKey(key: producer.publicKeyZ85, name: "p", role: .producer),
    ])

    func decide(_ domain: ZAPDomain, _ pair: CurveKeyPair) -> ZAPDecision {
        ZAPDecision.decide(domain: domain.rawValue, mechanism: "CURVE", credentials: [pair.publicKey], keys: Self.keys)
    }

    @Test func eachSocketLetsInOnlyTheRolesThatUseIt() throws {
        let stranger = try CurveKeyPair.generate()
        for domain in ZAPDomain.allCases {
            #expect(decide(domain, stranger) != .allow(userID: stranger.publicKeyZ85), "\(domain)")
        }
        #expect(decide(.dispatch, Self.observer) == .allow(userID: Self.observer.publicKeyZ85))
        #expect(decide(.events, Self.observer) == .allow(userID: Self.observer.publicKeyZ85))
        #expect(decide(.aggregator, Self.worker) == .allow(userID: Self.worker.publicKeyZ85))
        #expect(decide(.aggregator, Self.producer) != .allow(userID: Self.producer.publicKeyZ85))
        #expect(decide(.aggregator, Self.observer) != .allow(userID: Self.observer.publicKeyZ85))
        #expect(decide(.source, Self.producer) == .allow(userID: Self.producer.publicKeyZ85))
        #expect(decide(.source, Self.worker) != .allow(userID: Self.worker.publicKeyZ85))
        #expect(ZAPDecision.decide(domain: "elsewhere", mechanism: "CURVE", credentials: [Self.worker.publicKey], keys: Self.keys)
            == .deny(reason: "unknown ZAP domain 'elsewhere'"))
        #expect(ZAPDecision.decide(domain: ZAPDomain.dispatch.rawValue, mechanism: "NULL", credentials: [], keys: Self.keys)
            == .deny(reason: "mechanism NULL is not CURVE"))
    }

    @Test func theZAPReplyFollowsRFC27() {
        let request: [[UInt8]] = [Array("1.0".utf8), [7, 7], Array(ZAPDomain.aggregator.rawValue.utf8), Array("10.0.0.9".utf8), [],
                                  Array("CURVE".utf8), Self.producer.publicKey]
        var refusals: [String] = []
        let reply = ZAPHandler.answer(request, keys: Self.keys) { _, address, _ in refusals.append(address) }
        #expect(reply.count == 6)
        #expect(reply[0] == Array("1.0".utf8) && reply[1] == [7, 7] && reply[2] == Array("400".utf8) && reply[4] == [])
        #expect(refusals == ["10.0.0.9"])
        var allowed = request
        allowed[6] = Self.worker.publicKey
        let ok = ZAPHandler.answer(allowed, keys: Self.keys) { _, _, _ in Issue.record("refused a worker on the aggregator") }
        #expect(ok[2] == Array("200".utf8) && ok[4] == Array(Self.worker.publicKeyZ85.utf8))
    }

    @Test func dispatchMessagesAreCheckedAgainstTheSendersRole() {
        let (w, o, p) = (Self.worker.publicKeyZ85, Self.observer.publicKeyZ85, Self.producer.publicKeyZ85)
        #expect(DispatchAccess.workerProtocol.refusal(userID: w, keys: Self.keys) == nil)
        #expect(DispatchAccess.workerProtocol.refusal(userID: o, keys: Self.keys) != nil)
        #expect(DispatchAccess.of(service: "mmi.topology").refusal(userID: p, keys: Self.keys) != nil)
        #expect(DispatchAccess.of(service: "mmi.topology").refusal(userID: w, keys: Self.keys) == nil)
        #expect(DispatchAccess.of(service: "mmi.feed").refusal(userID: p, keys: Self.keys) == nil)
        #expect(DispatchAccess.of(service: "a-stage").refusal(userID: o, keys: Self.keys) != nil)
        #expect(DispatchAccess.of(service: "mmi.nodes").refusal(userID: o, keys: Self.keys) == nil)
        // A key removed since it connected.
        #expect(DispatchAccess.of(service: "mmi.nodes").refusal(userID: String(repeating: "q", count: 40), keys: Self.keys) != nil)
        // No keys configured: nothing to check (loopback or --insecure).
        #expect(DispatchAccess.workerProtocol.refusal(userID: nil, keys: nil) == nil)
    }

    @Test func theFactoryGivesCURVEToTheSocketsThatCrossMachines() throws {
        let server = SocketFactory(curve: CurveSetup(server: Self.worker))
        #expect(server.secured(.dispatch(maxMessageSize: 1)).security == .curveServer(keyPair: Self.worker, domain: "lancompute.dispatch"))
        #expect(server.secured(.aggregator(maxMessageSize: 1)).security == .curveServer(keyPair: Self.worker, domain: "lancompute.aggregator"))
        #expect(server.secured(.eventsPublisher).security == .curveServer(keyPair: Self.worker, domain: "lancompute.events"))
        #expect(server.secured(.sourceReader).security == .none)
        #expect(server.exposureProblem(binding: try Endpoint(parsing: "tcp://0.0.0.0:5555", use: .bind), as: .dispatch(maxMessageSize: 1)) == nil)
        #expect(SocketFactory().exposureProblem(binding: try Endpoint(parsing: "tcp://0.0.0.0:5555", use: .bind), as: .dispatch(maxMessageSize: 1)) != nil)
        let client = SocketFactory(curve: CurveSetup(client: (Self.producer, Self.worker.publicKey)))
        for profile in [SocketProfile.workerStage, .workerOutputs, .client, .feeder, .eventsSubscriber()] {
            #expect(client.secured(profile).security == .curveClient(serverKey: Self.worker.publicKey, keyPair: Self.producer))
        }
        #expect(client.secured(.sink).security == .none)
    }
}

@Suite struct ExecPolicyTests {
    @Test func patternsMatchTheResolvedProgram() {
        let policy = ExecPolicy(patterns: ["/usr/bin/*", "python3"])
        #expect(policy.refusal(executable: "/usr/bin/env") == nil)
        #expect(policy.refusal(executable: "/usr/local/bin/python3") == nil)
        #expect(policy.refusal(executable: "/usr/bin/../../bin/sh").map { $0.contains("matches no --allow-exec") } == true
                || FileManager.default.fileExists(atPath: "/usr/bin/sh"))
        #expect(ExecPolicy(patterns: ["/opt/tools/*"]).refusal(executable: "/opt/tools/sub/evil") != nil, "* does not cross a /")
        #expect(ExecPolicy.anyProgram.refusal(executable: "/anything") == nil)
    }

    @Test func aWorkerDoesNotServeAnExecStageOutsideThePolicy() {
        let stage = StageSpec(name: "shell", handler: .exec(ExecSpec(command: ["sh", "-c", "echo"])))
        #expect(ExecPolicy(patterns: ["ffmpeg"]).refusal(stage: stage, workingDirectory: "/") != nil)
        #expect(ExecPolicy(patterns: ["sh", "dash", "bash"]).refusal(stage: stage, workingDirectory: "/") == nil)
        #expect(ExecPolicy(patterns: ["ffmpeg"]).refusal(stage: StageSpec(name: "b", handler: .builtin(name: "upper", options: [:])), workingDirectory: "/") == nil)
    }
}

@Suite struct TopologyRedactionTests {
    @Test func theTopologyLeavesWithNamesOnlyAndWorkersFillInTheirValues() {
        let stage = StageSpec(name: "s", handler: .exec(ExecSpec(command: ["x"], environment: ["TOKEN": "secret", "MODE": "fast"])))
        let topology = Topology(name: "t", source: SourceSpec(kind: .stdin), stages: [stage], sink: SinkSpec(kind: .stdout))
        let sent = topology.withoutEnvironmentValues()
        guard case .exec(let exec) = sent.stages[0].handler else { Issue.record("not exec"); return }
        #expect(exec.environment == ["TOKEN": "", "MODE": ""])
        let filled = sent.withLocalEnvironment(["s": ["MODE": "slow"]])
        guard case .exec(let local) = filled.stages[0].handler else { Issue.record("not exec"); return }
        // Unknown here: left out, so the child inherits the worker's own variable, if any.
        #expect(local.environment == ["MODE": "slow"])
        #expect(topology.environmentValues == ["s": ["TOKEN": "secret", "MODE": "fast"]])
    }
}
