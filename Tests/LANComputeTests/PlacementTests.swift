// Requirements over detected GPUs, and the choice of worker (load-aware, spread over hosts), as pure functions.

import Testing
@testable import LANCompute

@Suite struct PlacementTests {
    /// Capabilities of a machine with these GPUs, as a worker's fingerprint announces them.
    static func machine(gpus: [(model: String, memory: Int)], unified: Bool? = nil, labels: [String: String] = [:]) -> Capabilities {
        let fingerprint = Fingerprint(
            host: "m", os: .init(name: "linux"), arch: "x86_64", cpu: .init(logicalCores: 8), memory: .init(totalBytes: 32 << 30),
            gpus: gpus.enumerated().map { index, gpu in
                Fingerprint.GPU(index: index, vendor: unified == nil ? "nvidia" : "apple", model: gpu.model,
                                memoryTotalBytes: gpu.memory, unifiedMemory: unified)
            },
            labels: labels)
        return Capabilities(fingerprint.capabilityValues)
    }

    static let twoBigOneSmall = machine(gpus: [("NVIDIA GeForce RTX 4090", 24 << 30), ("NVIDIA GeForce RTX 4090", 24 << 30),
                                               ("NVIDIA GeForce RTX 3060", 12 << 30)])

    // MARK: GPU requirements

    @Test func gpuModelIsACaseInsensitivePartOfAnyGPUsModel() {
        #expect(Requirements(gpuModel: "rtx 4090").unmetReason(Self.twoBigOneSmall) == nil)
        #expect(Requirements(gpuModel: "3060").unmetReason(Self.twoBigOneSmall) == nil, "the third GPU matches")
        #expect(Requirements(gpuModel: "A100").unmetReason(Self.twoBigOneSmall)
                == "needs a GPU whose model contains \"A100\", worker has NVIDIA GeForce RTX 4090 24GiB, NVIDIA GeForce RTX 4090 24GiB, NVIDIA GeForce RTX 3060 12GiB")
    }

    @Test func minGPUsCountsTheGPUsThatMatchTheOtherKeys() {
        #expect(Requirements(minGPUs: 3).unmetReason(Self.twoBigOneSmall) == nil)
        #expect(Requirements(minGPUs: 4).unmetReason(Self.twoBigOneSmall) != nil)
        #expect(Requirements(minGPUs: 2, gpuModel: "4090").unmetReason(Self.twoBigOneSmall) == nil)
        #expect(Requirements(minGPUs: 3, gpuModel: "4090").unmetReason(Self.twoBigOneSmall)?.hasPrefix("needs 3 GPUs whose model contains \"4090\"") == true)
        #expect(Requirements(minGPUs: 3, minGPUMemory: 16 << 30).unmetReason(Self.twoBigOneSmall)
                == "needs 3 GPUs, each with at least 16GiB of memory, worker has NVIDIA GeForce RTX 4090 24GiB, NVIDIA GeForce RTX 4090 24GiB, NVIDIA GeForce RTX 3060 12GiB")
    }

    @Test func minGPUMemoryNeedsOneGPUWithThatMuch() {
        #expect(Requirements(minGPUMemory: 24 << 30).unmetReason(Self.twoBigOneSmall) == nil)
        #expect(Requirements(minGPUMemory: 25 << 30).unmetReason(Self.twoBigOneSmall) != nil)
        // Model and memory describe the same GPU: the 3060 matches the model but not the memory.
        #expect(Requirements(gpuModel: "3060", minGPUMemory: 16 << 30).unmetReason(Self.twoBigOneSmall) != nil)
    }

    @Test func unifiedMemoryCountsMetalsWorkingSet() {
        // A Mac's fingerprint reports Metal's recommended working set as the GPU's memory.
        let mac = Self.machine(gpus: [("Apple M2 Max", 48 << 30)], unified: true)
        #expect(Requirements(minGPUMemory: 32 << 30).unmetReason(mac) == nil)
        #expect(Requirements(gpuModel: "m2", minGPUMemory: 64 << 30).unmetReason(mac) == "needs a GPU whose model contains \"m2\" with at least 64GiB of memory, worker has Apple M2 Max 48GiB")
    }

    @Test func aMachineWithoutGPUsOrWithThemHiddenMeetsNoGPUKey() {
        let none = Self.machine(gpus: [])
        #expect(Requirements(minGPUs: 1).unmetReason(none) == "needs a GPU, worker has none")
        let hidden = Self.machine(gpus: [("NVIDIA A100", 80 << 30)], labels: ["gpu": "false"])
        #expect(Requirements(gpuModel: "A100").unmetReason(hidden) == "needs a GPU whose model contains \"A100\", worker has none")
    }

    @Test func aFullFrameWithoutPerGPUKeysFallsBackToTheFirstGPU() {
        var capabilities = Self.twoBigOneSmall
        for name in capabilities.values.keys where name.hasPrefix("gpu.") && name.split(separator: ".").count == 3 {
            capabilities[name] = nil
        }
        #expect(capabilities["gpu.count"] == "3")
        #expect(Requirements(gpuModel: "4090").unmetReason(capabilities) == nil)
        #expect(Requirements(gpuModel: "3060").unmetReason(capabilities) != nil, "what was left out cannot be matched")
        #expect(Requirements(minGPUs: 3).unmetReason(capabilities) == nil, "the count survives")
    }

    @Test func theGPUKeysScoreAsOnePreference() {
        #expect(Requirements(minGPUs: 2, gpuModel: "4090", minGPUMemory: 20 << 30).score(Self.twoBigOneSmall) == 1)
        #expect(Requirements(minGPUs: 3, gpuModel: "4090").score(Self.twoBigOneSmall) == 0)
        #expect(Requirements(gpu: true, gpuModel: "4090").score(Self.twoBigOneSmall) == 2)
    }

    // MARK: Effective speed

    @Test func speedIsDiscountedByLoadPerCore() {
        func speed(_ values: [String: String]) -> Double? { EffectiveSpeed(Capabilities(values))?.value }
        #expect(speed(["speed": "100.0", "load.1": "0.00", "cores": "4"]) == 100)
        #expect(speed(["speed": "100.0", "load.1": "4.00", "cores": "4"]) == 50, "load equal to the cores halves it")
        #expect(speed(["speed": "100.0", "load.1": "12.00", "cores": "4"]) == 25, "an overloaded host still ranks by speed")
        #expect(speed(["speed": "100.0", "cores": "4"]) == nil)
        #expect(speed(["load.1": "1.0", "cores": "4"]) == nil)
        #expect(speed(["speed": "fast", "load.1": "1.0", "cores": "4"]) == nil)
        #expect(EffectiveSpeed(Capabilities(["speed": "9", "speed.unit": "MB/s", "load.1": "0", "cores": "1"]))?.unit == "MB/s")
    }

    // MARK: Choosing a worker

    static func candidate(preference: Int = 0, credit: Int = 4, inFlight: Int = 0, host: String = "h", cores: Int = 1,
                          speed: Double? = nil, unit: String = "MB/s") -> PlacementCandidate {
        PlacementCandidate(preference: preference, credit: credit, inFlight: inFlight, host: host, cores: cores,
                           speed: speed.map { EffectiveSpeed(value: $0, unit: unit) })
    }

    static func pick(_ candidates: [PlacementCandidate], spread: Bool = false) -> (index: Int, limit: Int?)? {
        var picker = PlacementPicker<Int>(spread: spread)
        for (index, candidate) in candidates.enumerated() { picker.consider(index, candidate) }
        return picker.pick().map { ($0.id, $0.limit) }
    }

    @Test func withoutSpeedsTheMostFreeCreditWinsAsBefore() {
        #expect(Self.pick([Self.candidate(inFlight: 2), Self.candidate(inFlight: 1), Self.candidate(inFlight: 1)])?.index == 1)
        #expect(Self.pick([Self.candidate(inFlight: 4), Self.candidate(credit: 1, inFlight: 1)]) == nil, "no free credit anywhere")
    }

    @Test func preferenceComesBeforeSpeed() {
        #expect(Self.pick([Self.candidate(speed: 1000), Self.candidate(preference: 1, inFlight: 3, speed: 1)])?.index == 1)
    }

    @Test func theFasterIdleWorkerWins() {
        #expect(Self.pick([Self.candidate(speed: 50), Self.candidate(speed: 80), Self.candidate(speed: 60)])?.index == 1)
    }

    @Test func anIdleSlowWorkerBeatsANearlyFullFastOne() {
        // Offered: 100 x 1/4 = 25 against 40 x 4/4 = 40.
        #expect(Self.pick([Self.candidate(inFlight: 3, speed: 100), Self.candidate(speed: 40)])?.index == 1)
        // Half full, the fast one still offers more: 100 x 2/4 = 50.
        #expect(Self.pick([Self.candidate(inFlight: 2, speed: 100), Self.candidate(speed: 40)])?.index == 0)
    }

    @Test func equalOfferedSpeedFallsBackToFreeCredit() {
        #expect(Self.pick([Self.candidate(credit: 2, speed: 10), Self.candidate(credit: 4, speed: 10)])?.index == 1)
    }

    @Test func oneWorkerWithoutFiguresOrAnotherUnitMakesFreeCreditDecide() {
        #expect(Self.pick([Self.candidate(inFlight: 1, speed: 100), Self.candidate(), Self.candidate(inFlight: 2, speed: 10)])?.index == 1)
        #expect(Self.pick([Self.candidate(inFlight: 1, speed: 100), Self.candidate(speed: 1, unit: "ops/s")])?.index == 1)
        // A full worker without figures does not matter: it cannot be chosen.
        #expect(Self.pick([Self.candidate(inFlight: 1, speed: 100), Self.candidate(inFlight: 4), Self.candidate(speed: 10)])?.index == 0)
    }

    // MARK: Spread

    /// Places `items` one by one (each pick takes one item) and returns how many each host holds.
    static func spreadItems(_ workers: [(host: String, credit: Int, cores: Int)], items: Int, spread: Bool = true) -> [String: Int] {
        var inFlight = [Int](repeating: 0, count: workers.count)
        for _ in 0..<items {
            let candidates = workers.indices.map { Self.candidate(credit: workers[$0].credit, inFlight: inFlight[$0], host: workers[$0].host, cores: workers[$0].cores) }
            guard let (index, _) = Self.pick(candidates, spread: spread) else { break }
            inFlight[index] += 1
        }
        var byHost: [String: Int] = [:]
        for (index, worker) in workers.enumerated() { byHost[worker.host, default: 0] += inFlight[index] }
        return byHost
    }

    @Test func spreadGoesRoundTheHostsNotTheProcesses() {
        let workers = [("h2", 2, 2), ("h2", 2, 2), ("h2", 2, 2), ("h3", 2, 2)]
        #expect(Self.spreadItems(workers, items: 4) == ["h2": 2, "h3": 2])
        // h3 is full at 2: h2 holds no more, though its processes have credit for 6.
        #expect(Self.spreadItems(workers, items: 8) == ["h2": 2, "h3": 2])
        // Without spread the processes take what their credit allows.
        #expect(Self.spreadItems(workers, items: 8, spread: false) == ["h2": 6, "h3": 2])
    }

    @Test func spreadWeighsHostsByTheirCores() {
        let workers = [("big", 16, 8), ("small", 2, 2)]
        // small is full at 2, 1 per core: big may hold 1 per core too.
        #expect(Self.spreadItems(workers, items: 20) == ["big": 8, "small": 2])
    }

    @Test func spreadLimitsABatchToTheHostsShare() {
        let candidates = [Self.candidate(credit: 8, inFlight: 0, host: "a"), Self.candidate(credit: 8, inFlight: 3, host: "b")]
        let chosen = Self.pick(candidates, spread: true)
        #expect(chosen?.index == 0)
        #expect(chosen?.limit == 4, "a may take up to one more than b holds")
        #expect(Self.pick([Self.candidate(credit: 8, host: "a")], spread: true)?.limit == nil, "a host alone is not limited")
    }

    @Test func spreadPrefersTheBetterWorkerAmongEqualHosts() {
        let candidates = [Self.candidate(host: "a", speed: 10), Self.candidate(inFlight: 1, host: "b", speed: 30),
                          Self.candidate(inFlight: 1, host: "b", speed: 5), Self.candidate(inFlight: 2, host: "a", speed: 90)]
        // Both hosts hold 2; b's best worker offers 30 x 3/4, a's best 90 x 2/4 = 45: a wins, with that worker.
        let chosen = Self.pick(candidates, spread: true)
        #expect(chosen?.index == 3)
        #expect(chosen?.limit == 1)
    }

    @Test func spreadWaitsForAFullHostThatHoldsFewer() {
        let candidates = [Self.candidate(credit: 1, inFlight: 1, host: "a"), Self.candidate(credit: 8, inFlight: 1, host: "b")]
        #expect(Self.pick(candidates, spread: true) == nil)
        let room = Self.pick([Self.candidate(credit: 4, inFlight: 4, host: "a"), Self.candidate(credit: 8, inFlight: 1, host: "b")], spread: true)
        #expect(room?.index == 1)
        #expect(room?.limit == 3, "b may catch up with a, not pass it")
    }

    @Test func aHostHoldingNothingMayAlwaysTakeOne() {
        // a has 64 cores and one item: by items per core b could take none, but every host is used.
        let candidates = [Self.candidate(credit: 1, inFlight: 1, host: "a", cores: 64), Self.candidate(credit: 8, host: "b")]
        let chosen = Self.pick(candidates, spread: true)
        #expect(chosen?.index == 1)
        #expect(chosen?.limit == 1)
        #expect(Self.pick([candidates[0], Self.candidate(credit: 8, inFlight: 1, host: "b")], spread: true) == nil)
    }

    @Test func aHostWithMoreCoresMayTakeWhatALessOccupiedOneMayNot() {
        // The full host holds 3 on 2 cores (1.5 each): c (1 core, 1 item) would reach 2 per core, d (8 cores, 8) 1.125.
        let candidates = [Self.candidate(credit: 3, inFlight: 3, host: "full", cores: 2), Self.candidate(credit: 4, inFlight: 1, host: "c", cores: 1),
                          Self.candidate(credit: 16, inFlight: 8, host: "d", cores: 8)]
        #expect(Self.pick(candidates, spread: true)?.index == 2)
    }
}
