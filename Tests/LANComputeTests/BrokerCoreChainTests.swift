// The broker core with chained stages: a chain is dispatched as its head and answered once as its tail.

import Testing
@testable import LANCompute

@Suite struct BrokerCoreChainTests {
    static func builtin(_ name: String, _ operatorName: String = "identity", from: [String] = [], maxAttempts: Int = 3,
                        priority: Int = 0, timeout: Duration? = nil, chain: Bool = true) -> StageSpec {
        StageSpec(name: name, handler: .builtin(name: operatorName, options: [:]), from: from, priority: priority,
                  timeout: timeout, maxAttempts: maxAttempts, chain: chain)
    }

    /// a > b > c, all chained.
    static func threeChained(maxAttempts: [Int] = [3, 3, 3], timeout: Duration? = nil) -> CoreDriver {
        CoreDriver([
            builtin("a", maxAttempts: maxAttempts[0], timeout: timeout),
            builtin("b", "upper", from: ["a"], maxAttempts: maxAttempts[1], timeout: timeout),
            builtin("c", "lower", from: ["b"], maxAttempts: maxAttempts[2], timeout: timeout),
        ], heartbeat: .milliseconds(100))
    }

    static func chainWorker(_ chain: String, credit: Int = 4, node: String = "n1") -> Capabilities {
        var capabilities = lanCompute(credit: credit, node: node)
        capabilities["chain"] = chain
        return capabilities
    }

    func joined(_ driver: CoreDriver) -> [String] {
        driver.actions.compactMap { if case .workerJoined(let worker) = $0 { worker.stageName } else { nil } }
    }

    @Test func onlyAWorkerThatRunsTheWholeChainMayServeItsHead() {
        let driver = Self.threeChained()
        driver.ready([1], "a", lanCompute(credit: 4))
        driver.ready([2], "a", Self.chainWorker("a,b"))
        driver.ready([3], "b", Self.chainWorker("a,b,c"))
        #expect(driver.protocolErrors == [.unknownStage, .unknownStage, .unknownStage])
        #expect(driver.disconnects([1]) == 1 && driver.disconnects([2]) == 1 && driver.disconnects([3]) == 1)
        #expect(joined(driver).isEmpty)
        driver.clear()
        driver.ready([4], "a", Self.chainWorker("a,b,c"))
        #expect(joined(driver) == ["a"])
        #expect(driver.protocolErrors.isEmpty)
    }

    @Test func aChainsOutcomeIsReportedOnceAndGoesToTheSinkUnderTheHeadItemsID() {
        let driver = Self.threeChained()
        driver.ready([1], "a", Self.chainWorker("a,b,c"))
        driver.feed(.accepted(id: 7, payload: [7]))
        #expect(driver.sentIDs(to: [1]) == [7])
        driver.delivered([1], 7)
        #expect(driver.forwarded.isEmpty, "the worker PUSHed the tail's outputs itself")
        var received = [0, 0, 0]
        var completed = [0, 0, 0]
        for case .stageCounts(let stage, let count, let latencies) in driver.actions {
            received[stage] += count
            completed[stage] += latencies.count
        }
        #expect(completed == [1, 1, 1], "every member counts the item")
        #expect(received == [1, 1, 1])
        driver.feed(.outputsOffered([OfferedOutput(id: 7, epoch: driver.core.epoch, attempt: 1)]))
        driver.feed(.aggregatorAcknowledged(ids: [7]))
        #expect(driver.inSink == [7])
        driver.feed(.shutDown(reason: .runEnded))
        #expect(driver.deadLetters.isEmpty)
    }

    @Test func aFailureNamesTheMemberThatFailedAndUsesItsMaxAttempts() {
        let driver = Self.threeChained(maxAttempts: [5, 2, 5])
        driver.ready([1], "a", Self.chainWorker("a,b,c"))
        driver.feed(.accepted(id: 1, payload: [1]))
        let failure = { (attempt: UInt16) in
            driver.reply([1], [ItemOutcome(id: 1, epoch: driver.core.epoch, attempt: attempt,
                                           status: .failedAt(stage: "b", message: "b broke", stderr: "trace"))])
        }
        failure(1)
        #expect(driver.retries.map(\.id) == [1])
        #expect(driver.sentIDs(to: [1]) == [1, 1], "retried from the chain's head")
        failure(2)
        #expect(driver.deadLetters.count == 1)
        let letter = driver.deadLetters.first
        #expect(letter?.stage == 1 && letter?.stageName == "b")
        #expect(letter?.lastError == "b broke" && letter?.lastStderr == "trace")
        #expect(letter?.payload == [1], "the dead letter keeps the item as it entered the chain")
        let failed = driver.actions.compactMap { if case .attemptFailed(let stage) = $0 { stage } else { nil } }
        #expect(failed == [1, 1])
    }

    @Test func aChainedMemberNotInTheChainCountsAsTheHead() {
        let driver = Self.threeChained(maxAttempts: [1, 3, 3])
        driver.ready([1], "a", Self.chainWorker("a,b,c"))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.reply([1], [ItemOutcome(id: 1, epoch: driver.core.epoch, attempt: 1,
                                       status: .failedAt(stage: "nonsense", message: "x", stderr: ""))])
        #expect(driver.deadLetters.map(\.stageName) == ["a"])
    }

    @Test func aWorkerKilledMidChainHasItsItemsRunAgainOnAnother() {
        let driver = Self.threeChained()
        driver.ready([1], "a", Self.chainWorker("a,b,c", node: "n1"))
        driver.feed(.accepted(id: 3, payload: [3]))
        #expect(driver.sentIDs(to: [1]) == [3])
        driver.ready([2], "a", Self.chainWorker("a,b,c", node: "n2"))
        for _ in 0..<3 {
            driver.advance(.milliseconds(100))
            driver.feed(.worker(peer: [2], message: .heartbeat))
            driver.feed(.tick)
        }
        #expect(driver.sentIDs(to: [2]) == [3])
        #expect(driver.retries.map(\.reason) == [.workerLost])
        driver.delivered([2], 3, attempt: 2)
        driver.feed(.outputsOffered([OfferedOutput(id: 3, epoch: driver.core.epoch, attempt: 1),
                                     OfferedOutput(id: 3, epoch: driver.core.epoch, attempt: 2)]))
        let admissions = driver.actions.compactMap { if case .admission(let admitted, let refused) = $0 { (admitted, refused) } else { nil } }
        #expect(admissions.last?.0 == [3] && admissions.last?.1 == [3], "one attempt's outputs, once")
        driver.feed(.aggregatorAcknowledged(ids: [3]))
        #expect(driver.inSink == [3])
    }

    @Test func aChainFeedsTheStageAfterItWithIDsDerivedFromTheHeadAndItsMembersPriority() {
        let driver = CoreDriver([
            Self.builtin("a"),
            Self.builtin("b", "upper", from: ["a"], priority: 4),
            Self.builtin("c", "lower", from: ["b"], chain: false),
        ])
        driver.ready([1], "a", Self.chainWorker("a,b"))
        driver.ready([2], "c", lanCompute(credit: 4))
        driver.feed(.accepted(id: 9, payload: [9]))
        driver.completed([1], 9, outputs: [[1], [2]])
        let sent = driver.requests(to: [2]).flatMap(\.items)
        #expect(sent.map(\.header.id) == [ItemID.derived(parent: 9, stageIndex: 2, outputIndex: 0),
                                          ItemID.derived(parent: 9, stageIndex: 2, outputIndex: 1)])
        #expect(sent.map(\.header.priority) == [4, 4], "the chained member's priority flows on")
    }

    @Test func aChainsTimeoutIsTheSumOfItsMembers() {
        let driver = Self.threeChained(maxAttempts: [1, 1, 1], timeout: .milliseconds(100))
        driver.ready([1], "a", Self.chainWorker("a,b,c"))
        driver.feed(.accepted(id: 1, payload: [1]))
        driver.advance(.milliseconds(250))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.deadLetters.isEmpty, "250 ms is within 3 x 100 ms")
        driver.advance(.milliseconds(60))
        driver.feed(.worker(peer: [1], message: .heartbeat))
        driver.feed(.tick)
        #expect(driver.deadLetters.map(\.reason) == [.attemptsExhausted])
        #expect(driver.deadLetters.first?.lastError == "timed out after 300ms")
    }

    @Test func aNodeServingAChainListsEveryMember() {
        let driver = Self.threeChained()
        driver.ready([1], "a", Self.chainWorker("a,b,c", node: "n1"))
        #expect(driver.core.nodeSummaries(now: driver.now).map(\.stages) == [["a", "b", "c"]])
        #expect(driver.core.hasWorkers(stage: 2), "mmi.service says a chained stage is served when its head is")
    }

    @Test func aClientRequestForAChainedMemberIsAnsweredWithTheChainsHead() {
        let driver = Self.threeChained()
        driver.feed(.clientRequest(stage: 1, id: 1 << 63, payload: [1], client: [9], service: "b"))
        let replies = driver.actions.compactMap { if case .clientReply(let peer, _, let body) = $0 { (peer, body) } else { nil } }
        #expect(replies.count == 1 && replies.first?.0 == [9])
        let text = replies.first.map { String(decoding: $0.1.last ?? [], as: UTF8.self) } ?? ""
        #expect(text.contains("chain a > b > c") && text.contains("send the request to a"))
        #expect(driver.core.pending == 0)
    }
}
