// CPace and the pairing state machines without sockets: the right code agrees, a wrong one or an altered transcript is refused.

import Foundation
import Testing
import ZeroMQ
@testable import LANCompute

@Suite struct CPaceTests {
    static let channel = Array("test channel".utf8)
    static let session = [UInt8](repeating: 7, count: CPace.sessionIDSize)

    /// Both sides' session keys for passwords `a` and `b`.
    static func keys(_ a: String, _ b: String, dataA: [UInt8] = Array("a".utf8), dataB: [UInt8] = Array("b".utf8)) throws -> ([UInt8]?, [UInt8]?) {
        let initiator = try #require(CPace(password: Array(a.utf8), channel: channel, sessionID: session))
        let responder = try #require(CPace(password: Array(b.utf8), channel: channel, sessionID: session))
        let keyA = initiator.sessionKey(peerShare: responder.share, sessionID: session,
                                        initiator: (initiator.share, dataA), responder: (responder.share, dataB))
        let keyB = responder.sessionKey(peerShare: initiator.share, sessionID: session,
                                        initiator: (initiator.share, dataA), responder: (responder.share, dataB))
        return (keyA, keyB)
    }

    @Test func theSamePasswordGivesBothSidesTheSameKey() throws {
        let (a, b) = try Self.keys("428913", "428913")
        #expect(a != nil && a == b)
        #expect(a?.count == 64)
        // A new run picks new scalars: a new key.
        let (again, _) = try Self.keys("428913", "428913")
        #expect(again != a)
    }

    @Test func anotherPasswordGivesAnotherKey() throws {
        let (a, b) = try Self.keys("428913", "428914")
        #expect(a != nil && b != nil && a != b)
    }

    @Test func sharesOfOneCodeDifferPerRunAndPerSession() throws {
        let one = try #require(CPace(password: Array("1".utf8), channel: Self.channel, sessionID: Self.session))
        let two = try #require(CPace(password: Array("1".utf8), channel: Self.channel, sessionID: Self.session))
        #expect(one.share != two.share)
        #expect(CPace.generator(password: Array("1".utf8), channel: Self.channel, sessionID: Self.session)
                != CPace.generator(password: Array("1".utf8), channel: Self.channel, sessionID: [UInt8](repeating: 8, count: 16)))
    }

    @Test func theIdentityAndInvalidEncodingsAreRefused() throws {
        let party = try #require(CPace(password: Array("1".utf8), channel: Self.channel, sessionID: Self.session))
        for bad in [[UInt8](repeating: 0, count: 32), [UInt8](repeating: 0xFF, count: 32), [UInt8](repeating: 1, count: 31)] {
            #expect(party.sessionKey(peerShare: bad, sessionID: Self.session, initiator: (bad, []), responder: (party.share, [])) == nil)
        }
    }

    @Test func theGeneratorStringFollowsTheDraftLayout() {
        // lv_cat(DSI, PRS, zero padding, CI, sid): DSI and PRS with their lengths fill one SHA-512 block but one byte.
        let string = CPace.generatorString(password: Array("Password".utf8), channel: Array("CI".utf8), sessionID: [9, 9])
        #expect(Array(string.prefix(18)) == [17] + Array("CPaceRistretto255".utf8))
        #expect(Array(string[18...26]) == [8] + Array("Password".utf8))
        let padding = 128 - 1 - 18 - 9
        #expect(string[27] == UInt8(padding))
        #expect(string.count == 18 + 9 + 1 + padding + 3 + 3)
        #expect(Array(CPace.prependLength([UInt8](repeating: 0, count: 200)).prefix(2)) == [0xC8, 0x01])
    }
}

/// The draft's test vector for CPACE-RISTR255-SHA512 (draft-irtf-cfrg-cpace, appendix B.3).
@Suite struct CPaceVectorTests {
    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    static let password = Array("Password".utf8)
    static let channel = hex("6f630b425f726573706f6e6465720b415f696e69746961746f72")
    static let session = hex("7e4b4791d6a8ef019b936c79fb7f2c57")

    @Test func theGeneratorStringAndTheGenerator() {
        let string = CPace.generatorString(password: Self.password, channel: Self.channel, sessionID: Self.session)
        #expect(string == Self.hex("11435061636552697374726574746f3235350850617373776f726464" + String(repeating: "00", count: 100)
            + "1a6f630b425f726573706f6e6465720b415f696e69746961746f72107e4b4791d6a8ef019b936c79fb7f2c57"))
        #expect(CPace.generator(password: Self.password, channel: Self.channel, sessionID: Self.session)
                == Self.hex("a6fc82c3b8968fbb2e06fee81ca858586dea50d248f0c7ca6a18b0902a30b36b"))
    }

    @Test func theSharesAndTheSessionKey() throws {
        let initiator = try #require(CPace(password: Self.password, channel: Self.channel, sessionID: Self.session,
                                           scalar: Self.hex("da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08")))
        let responder = try #require(CPace(password: Self.password, channel: Self.channel, sessionID: Self.session,
                                           scalar: Self.hex("d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d")))
        #expect(initiator.share == Self.hex("d40fb265a7abeaee7939d91a585fe59f7053f982c296ec413c624c669308f87a"))
        #expect(responder.share == Self.hex("08bcf6e9777a9c313a3db6daa510f2d398403319c2341bd506a92e672eb7e307"))
        let isk = Self.hex("4c5469a16b2364c4b944ebc1a79e51d1674ad47db26e8718154f59faebfaa52d"
                           + "8346f30aa58377117eb20d527f2cbc5c76381f7fd372e89df8239f87f2e02ed1")
        let transcript = (initiator: (initiator.share, Array("ADa".utf8)), responder: (responder.share, Array("ADb".utf8)))
        #expect(initiator.sessionKey(peerShare: responder.share, sessionID: Self.session,
                                     initiator: transcript.initiator, responder: transcript.responder) == isk)
        #expect(responder.sessionKey(peerShare: initiator.share, sessionID: Self.session,
                                     initiator: transcript.initiator, responder: transcript.responder) == isk)
    }
}

@Suite struct PairingTests {
    static let start = ContinuousClock.now

    struct Sides {
        var head: PairingHead
        var worker: PairingWorker
        let headKey: CurveKeyPair
        let workerKey: CurveKeyPair
    }

    static func sides(headCode: String = "428913", workerCode: String = "428913", fingerprint: String? = nil) throws -> Sides {
        let headKey = try CurveKeyPair.generate()
        let workerKey = try CurveKeyPair.generate()
        return Sides(
            head: PairingHead(code: try #require(PairingCode(parsing: headCode)), publicKey: headKey.publicKey, name: "head",
                              expiresAt: start + .seconds(120)),
            worker: PairingWorker(code: try #require(PairingCode(parsing: workerCode)), publicKey: workerKey.publicKey, name: "gpu-box",
                                  expectedFingerprint: fingerprint),
            headKey: headKey, workerKey: workerKey)
    }

    static let peer: [UInt8] = [0, 1, 2, 3]

    /// The head's one message to the peer among `actions`.
    static func sent(_ actions: [PairingHead.Action]) throws -> PairingMessage {
        let messages = actions.compactMap { action -> PairingMessage? in
            if case .send(let to, let message) = action, to == peer { return message }
            return nil
        }
        return try #require(messages.count == 1 ? messages[0] : nil, "\(actions)")
    }

    @Test func withTheRightCodeBothSidesLearnTheOthersKey() throws {
        var sides = try Self.sides()
        let answer = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .confirm(let confirmation) = sides.worker.receive(answer) else { Issue.record("no confirmation"); return }
        let actions = sides.head.receive(from: Self.peer, frames: confirmation.frames, at: Self.start + .seconds(1))
        #expect(actions == [.authorize(peer: Self.peer, name: "gpu-box", key: sides.workerKey.publicKey)])
        #expect(sides.head.isOver)
        let paired = sides.worker.receive(.done(name: "gpu-box"))
        #expect(paired == .paired(.init(brokerKey: sides.headKey.publicKey, headName: "head", authorizedName: "gpu-box")))
    }

    @Test func aWrongCodeFailsOnTheWorkerAndUsesOneOfTheHeadsTries() throws {
        var sides = try Self.sides(workerCode: "428-914")
        let answer = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .failed(let error, let last) = sides.worker.receive(answer) else { Issue.record("the worker accepted a wrong code"); return }
        #expect(error.code == .pairingFailed)
        #expect(last == .abort)
        let actions = sides.head.receive(from: Self.peer, frames: PairingMessage.abort.frames, at: Self.start)
        #expect(actions == [.send(to: Self.peer, .refused(code: "LC2076", text: "wrong code (2 tries left)")),
                            .note("pairing attempt from 'gpu-box' failed: wrong code (2 tries left)")])
        #expect(!sides.head.isOver)
        #expect(sides.head.attemptsLeft == 2)
    }

    @Test func aWorkerThatIgnoresTheFailureCannotConfirm() throws {
        // An attacker with a wrong guess who sends a confirmation anyway (with a tag it cannot make).
        var sides = try Self.sides(workerCode: "000000")
        _ = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        let forged = PairingMessage.confirm(publicKey: sides.workerKey.publicKey, tag: [UInt8](repeating: 0, count: 64))
        let actions = sides.head.receive(from: Self.peer, frames: forged.frames, at: Self.start)
        #expect(!actions.contains { if case .authorize = $0 { true } else { false } })
        #expect(try Self.sent(actions) == .refused(code: "LC2076", text: "the confirmation did not verify"))
    }

    @Test func aTranscriptChangedInTransitIsRefused() throws {
        // The worker's name (its associated data) changed on the way to the head.
        var sides = try Self.sides()
        guard case .start(let session, let share, _) = sides.worker.start else { Issue.record(); return }
        let altered = PairingMessage.start(sessionID: session, share: share, name: "mallory")
        var answer = try Self.sent(sides.head.receive(from: Self.peer, frames: altered.frames, at: Self.start))
        guard case .failed(let error, _) = sides.worker.receive(answer) else { Issue.record("an altered start was accepted"); return }
        #expect(error.code == .pairingFailed)

        // The head's key swapped for an attacker's in the answer.
        sides = try Self.sides()
        answer = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .answer(let headShare, let name, _, let tag) = answer else { Issue.record(); return }
        let attacker = try CurveKeyPair.generate()
        guard case .failed = sides.worker.receive(.answer(share: headShare, name: name, publicKey: attacker.publicKey, tag: tag)) else {
            Issue.record("a swapped broker key was accepted"); return
        }

        // The worker's key swapped for an attacker's in the confirmation.
        sides = try Self.sides()
        answer = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .confirm(.confirm(_, let workerTag)) = sides.worker.receive(answer) else { Issue.record(); return }
        let actions = sides.head.receive(from: Self.peer, frames: PairingMessage.confirm(publicKey: attacker.publicKey, tag: workerTag).frames,
                                         at: Self.start)
        #expect(!actions.contains { if case .authorize = $0 { true } else { false } })

        // The head's share replaced by another valid point.
        sides = try Self.sides()
        answer = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .answer(_, let headName, let key, let headTag) = answer else { Issue.record(); return }
        let other = try #require(CPace(password: Array("428913".utf8), channel: PairingConfirmation.channel, sessionID: CPaceTests.session))
        guard case .failed = sides.worker.receive(.answer(share: other.share, name: headName, publicKey: key, tag: headTag)) else {
            Issue.record("a replaced share was accepted"); return
        }
    }

    @Test func threeTriesThenTheCodeIsUsedUp() throws {
        var sides = try Self.sides()
        var finished: [PairingHead.Action] = []
        for attempt in 1...3 {
            var wrong = PairingWorker(code: PairingCode(parsing: "11111\(attempt)")!, publicKey: sides.workerKey.publicKey, name: "w")
            let peer: [UInt8] = [UInt8(attempt)]
            let answer = sides.head.receive(from: peer, frames: wrong.start.frames, at: Self.start)
            guard case .send(_, let message) = answer.first, case .failed = wrong.receive(message) else { Issue.record(); return }
            finished = sides.head.receive(from: peer, frames: PairingMessage.abort.frames, at: Self.start)
        }
        #expect(finished.last.map { if case .finished(let error) = $0 { error.code == .pairingCodeUnusable } else { false } } == true, "\(finished)")
        #expect(sides.head.isOver)
        // Even the right code gets nothing now.
        #expect(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start).isEmpty)
    }

    @Test func aFourthStartIsRefusedWhileTheThirdIsOpen() throws {
        var sides = try Self.sides()
        for attempt in 1...3 {
            let worker = PairingWorker(code: PairingCode(parsing: "222222")!, publicKey: sides.workerKey.publicKey, name: "w")
            _ = sides.head.receive(from: [UInt8(attempt)], frames: worker.start.frames, at: Self.start)
        }
        let refused = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .refused(let code, _) = refused else { Issue.record("\(refused)"); return }
        #expect(code == "LC2077")
        // The open runs time out; then the code is used up.
        let later = sides.head.tick(at: Self.start + .seconds(11))
        #expect(later.filter { if case .note = $0 { true } else { false } }.count == 3)
        #expect(later.last.map { if case .finished(let error) = $0 { error.code == .pairingCodeUnusable } else { false } } == true)
    }

    @Test func anExpiredCodeAnswersNothingButARefusalAndEnds() throws {
        var sides = try Self.sides()
        #expect(sides.head.tick(at: Self.start + .seconds(119)).isEmpty)
        let refused = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start + .seconds(120)))
        #expect(refused == .refused(code: "LC2077", text: "the pairing code has expired; run 'lancompute pair' on the head for a new one"))
        guard case .failed(let error, nil) = sides.worker.receive(refused) else { Issue.record(); return }
        #expect(error.code == .pairingCodeUnusable)
        let actions = sides.head.tick(at: Self.start + .seconds(121))
        #expect(actions.count == 1)
        #expect(sides.head.isOver)
    }

    @Test func aDiscoveredFingerprintMustMatchTheHeadsKey() throws {
        var sides = try Self.sides(fingerprint: "00112233445566778899aabbccddeeff")
        let answer = try Self.sent(sides.head.receive(from: Self.peer, frames: sides.worker.start.frames, at: Self.start))
        guard case .failed(let error, .abort?) = sides.worker.receive(answer) else { Issue.record("a key of another broker was accepted"); return }
        #expect(error.code == .pairingKeyMismatch)

        var matching = try Self.sides()
        matching.worker = PairingWorker(code: PairingCode(parsing: "428913")!, publicKey: matching.workerKey.publicKey, name: "w",
                                        expectedFingerprint: KeyFingerprint.of(matching.headKey.publicKey))
        let good = try Self.sent(matching.head.receive(from: Self.peer, frames: matching.worker.start.frames, at: Self.start))
        guard case .confirm = matching.worker.receive(good) else { Issue.record("the announced key was refused"); return }
    }

    @Test func codesParseWithOrWithoutTheDash() {
        #expect(PairingCode(parsing: "428-913")?.digits == "428913")
        #expect(PairingCode(parsing: "428913")?.description == "428-913")
        #expect(PairingCode(parsing: "428 913") != nil)
        for bad in ["42891", "4289134", "42a-913", "", "428--913", "٤٢٨٩١٣"] { #expect(PairingCode(parsing: bad) == nil, "\(bad)") }
        let codes = Set((0..<50).map { _ in PairingCode.random().digits })
        #expect(codes.count > 40)
        #expect(codes.allSatisfy { $0.count == 6 })
    }

    @Test func messagesRoundTripAndAMalformedOneNamesItsFrame() throws {
        let messages: [PairingMessage] = [
            .start(sessionID: [UInt8](repeating: 1, count: 16), share: [UInt8](repeating: 2, count: 32), name: "w"),
            .answer(share: [UInt8](repeating: 2, count: 32), name: "h", publicKey: [UInt8](repeating: 3, count: 32), tag: [UInt8](repeating: 4, count: 64)),
            .confirm(publicKey: [UInt8](repeating: 3, count: 32), tag: [UInt8](repeating: 4, count: 64)),
            .done(name: "w"), .abort, .received, .refused(code: "LC2077", text: "expired"),
        ]
        for message in messages { #expect(try PairingMessage(frames: message.frames) == message) }
        #expect(throws: PairingWireError("'start' frame 3 (share) has 31 bytes, expected 32")) {
            try PairingMessage(frames: [PairingMessage.protocolFrame, Array("start".utf8), [UInt8](repeating: 1, count: 16), [UInt8](repeating: 1, count: 31), []])
        }
        #expect(throws: PairingWireError("not a pairing message (no LCPAIR1 frame)")) { try PairingMessage(frames: [Array("MDPW01".utf8), []]) }
        #expect(throws: PairingWireError("unknown command 'hello'")) { try PairingMessage(frames: [PairingMessage.protocolFrame, Array("hello".utf8)]) }
    }

    @Test func namesAreMadeUsableForAuthorizedKeys() {
        #expect(PairingListener.usableName("gpu box#1") == "gpu-box-1")
        #expect(PairingListener.usableName("worker") == "paired-worker")
        #expect(PairingListener.usableName("") == "paired")
    }
}

/// The listener and the client over a real loopback socket, with key directories on disk.
@Suite(.serialized, .timeLimit(.minutes(1))) struct PairingServiceTests {
    static func directory() throws -> KeyDirectory {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pairing-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return KeyDirectory(path: path)
    }

    /// Runs the listener on a thread; returns its result once it ends.
    static func listen(_ listener: PairingListener) throws -> (endpoint: String, result: () -> Result<PairingListener.Authorized, RuntimeError>) {
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let box = LockedValue<(String?, Result<PairingListener.Authorized, RuntimeError>?)>((nil, nil))
        let thread = Thread {
            let result: Result<PairingListener.Authorized, RuntimeError>
            do {
                result = .success(try listener.run(onReady: { endpoint in box.withLock { $0.0 = endpoint }; ready.signal() }, note: { _ in }))
            } catch {
                result = .failure(error as? RuntimeError ?? RuntimeError(.unclassified, "\(error)"))
                ready.signal()
            }
            box.withLock { $0.1 = result }
            done.signal()
        }
        thread.start()
        try #require(ready.wait(timeout: .now() + 10) == .success)
        let endpoint = try #require(box.withLock { $0.0 }, "\(String(describing: box.withLock { $0.1 }))")
        return (endpoint, {
            _ = done.wait(timeout: .now() + 20)
            return box.withLock { $0.1 } ?? .failure(RuntimeError(.pairingNoAnswer, "the listener did not end"))
        })
    }

    @Test func aWorkerWithTheCodeIsAuthorizedAndLearnsTheBrokerKey() throws {
        let head = try Self.directory()
        let headPair = try head.generate(force: false)
        let code = PairingCode.random()
        let listener = PairingListener(keys: head, keyPair: headPair, code: code, headName: "head", endpoint: "tcp://127.0.0.1:*",
                                       lifetime: .seconds(30))
        let (endpoint, result) = try Self.listen(listener)
        let workerPair = try CurveKeyPair.generate()
        let paired = try PairingClient.pair(endpoint: endpoint, code: code, keyPair: workerPair, name: "gpu-box", timeout: .seconds(5))
        #expect(paired.brokerKey == headPair.publicKey)
        #expect(paired.authorizedName == "gpu-box")
        let authorized = try result().get()
        #expect(authorized.entry.name == "gpu-box")
        let keys = try AuthorizedKeys.load(path: head.authorizedKeysPath)
        #expect(keys.role(of: workerPair.publicKeyZ85) == .worker)
        #expect(keys.entries.count == 1)
    }

    @Test func aWrongCodeWritesNothingAndThreeUseTheCodeUp() throws {
        let head = try Self.directory()
        let headPair = try head.generate(force: false)
        let listener = PairingListener(keys: head, keyPair: headPair, code: PairingCode(parsing: "111-111")!, headName: "head",
                                       endpoint: "tcp://127.0.0.1:*", lifetime: .seconds(30))
        let (endpoint, result) = try Self.listen(listener)
        for _ in 1...3 {
            #expect {
                try PairingClient.pair(endpoint: endpoint, code: PairingCode(parsing: "222-222")!, keyPair: try CurveKeyPair.generate(),
                                       name: "w", timeout: .seconds(5))
            } throws: { ($0 as? RuntimeError)?.code == .pairingFailed }
        }
        guard case .failure(let error) = result() else { Issue.record("the listener paired a wrong code"); return }
        #expect(error.code == .pairingCodeUnusable)
        #expect(!FileManager.default.fileExists(atPath: head.authorizedKeysPath))
    }
}
