// Matching stage requirements and preferences against what a worker announced, and choosing the worker for the next items.

extension Requirements {
    /// Why `capabilities` do not meet these requirements, or nil when they do.
    public func unmetReason(_ capabilities: Capabilities) -> String? {
        if let arch, Self.normalisedArch(capabilities["arch"] ?? "") != Self.normalisedArch(arch) {
            return "needs arch \(arch), worker has \(capabilities["arch"] ?? "unknown")"
        }
        if let os, (capabilities["os"] ?? "").lowercased() != os.lowercased() {
            return "needs os \(os), worker has \(capabilities["os"] ?? "unknown")"
        }
        if let gpu {
            let has = capabilities["gpu"] == "true"
            if has != gpu { return gpu ? "needs a GPU" : "must not have a GPU" }
        }
        if describesGPUs, !gpusMet(capabilities) {
            return "\(gpuNeed), worker has \(Self.describe(capabilities.announcedGPUs))"
        }
        if let minMemory {
            let memory = capabilities["memory"].flatMap(Int.init) ?? 0
            if memory < minMemory { return "needs \(minMemory) bytes of memory, worker has \(memory)" }
        }
        if let minCores {
            let cores = capabilities["cores"].flatMap(Int.init) ?? 0
            if cores < minCores { return "needs \(minCores) cores, worker has \(cores)" }
        }
        let labels = capabilities.labels
        for (name, value) in self.labels where labels[name] != value {
            return "needs label \(name)=\(value)"
        }
        return nil
    }

    /// How many of these (preferred) properties `capabilities` have; higher is better. The GPU
    /// keys together describe one kind of GPU and count as one property.
    public func score(_ capabilities: Capabilities) -> Int {
        var score = 0
        if let arch, Self.normalisedArch(capabilities["arch"] ?? "") == Self.normalisedArch(arch) { score += 1 }
        if let os, (capabilities["os"] ?? "").lowercased() == os.lowercased() { score += 1 }
        if let gpu, (capabilities["gpu"] == "true") == gpu { score += 1 }
        if describesGPUs, gpusMet(capabilities) { score += 1 }
        if let minMemory, (capabilities["memory"].flatMap(Int.init) ?? 0) >= minMemory { score += 1 }
        if let minCores, (capabilities["cores"].flatMap(Int.init) ?? 0) >= minCores { score += 1 }
        let labels = capabilities.labels
        for (name, value) in self.labels where labels[name] == value { score += 1 }
        return score
    }

    /// Whether a GPU matches `gpu-model` (a case-insensitive part of its model name) and has at
    /// least `min-gpu-memory`; a GPU whose model or memory the worker did not announce does not
    /// match a key that asks about it.
    func qualifies(_ gpu: AnnouncedGPU) -> Bool {
        if let gpuModel {
            guard let model = gpu.model, model.lowercased().contains(gpuModel.lowercased()) else { return false }
        }
        if let minGPUMemory {
            guard let memory = gpu.memory, memory >= minGPUMemory else { return false }
        }
        return true
    }

    /// At least `min-gpus` (1 when only the other GPU keys are set) of the worker's GPUs qualify.
    func gpusMet(_ capabilities: Capabilities) -> Bool {
        capabilities.announcedGPUs.filter(qualifies).count >= (minGPUs ?? 1)
    }

    /// The GPU keys as a person reads them: `needs 2 GPUs whose model contains "RTX 4090", each with at least 16GiB`.
    var gpuNeed: String {
        let count = minGPUs ?? 1
        var text = count == 1 ? "needs a GPU" : "needs \(count) GPUs"
        if let gpuModel { text += " whose model contains \"\(gpuModel)\"" }
        if let minGPUMemory { text += "\(count == 1 ? " with" : ", each with") at least \(ByteSize.format(minGPUMemory)) of memory" }
        return text
    }

    static func describe(_ gpus: [AnnouncedGPU]) -> String {
        guard !gpus.isEmpty else { return "none" }
        let shown = gpus.prefix(4).map { gpu in
            let memory = gpu.memory.map { " \(ByteSize.format($0))" } ?? ""
            return "\(gpu.model ?? "unknown model")\(memory)"
        }
        return shown.joined(separator: ", ") + (gpus.count > shown.count ? " and \(gpus.count - shown.count) more" : "")
    }

    static func normalisedArch(_ arch: String) -> String {
        switch arch.lowercased() {
        case "aarch64", "arm64": "arm64"
        case "amd64", "x86_64", "x86-64": "x86_64"
        default: arch.lowercased()
        }
    }
}

/// One GPU as a worker's capabilities describe it (`gpu.N.model`, `gpu.N.memory`).
struct AnnouncedGPU: Equatable {
    var model: String?
    /// Total memory in bytes; for unified memory (Apple silicon) Metal's recommended working set.
    var memory: Int?
}

extension Capabilities {
    /// The GPUs the worker detected, `gpu.count` of them in index order, with the model and memory
    /// of each where the frame kept them (a full frame drops `gpu.N.*` first; then the first GPU's
    /// `gpu.model` and `gpu.memory` stand in for it). None when a label `gpu=false` hides them.
    var announcedGPUs: [AnnouncedGPU] {
        guard values["gpu"] != "false" else { return [] }
        var byIndex: [Int: AnnouncedGPU] = [:]
        for (name, value) in values where name.hasPrefix("gpu.") {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let index = Int(parts[1]) else { continue }
            switch parts[2] {
            case "model": byIndex[index, default: AnnouncedGPU()].model = value
            case "memory": byIndex[index, default: AnnouncedGPU()].memory = Int(value)
            default: break
            }
        }
        let count = values["gpu.count"].flatMap(Int.init).map { max(0, $0) } ?? byIndex.count
        var gpus = byIndex.sorted { $0.key < $1.key }.map(\.value).prefix(count).map { $0 }
        if gpus.isEmpty, count > 0, values["gpu.model"] != nil || values["gpu.memory"] != nil {
            gpus.append(AnnouncedGPU(model: values["gpu.model"], memory: values["gpu.memory"].flatMap(Int.init)))
        }
        while gpus.count < count { gpus.append(AnnouncedGPU()) }
        return gpus
    }
}

// MARK: Choosing a worker

/// A worker's benchmark figure discounted by the load of its host: `speed / (1 + load.1 / cores)`.
///
/// With `load.1` threads wanting to run on `cores` cores, one more thread gets roughly
/// `cores / (cores + load.1)` of a core: the whole of one on an idle host, half on a host whose
/// load equals its cores. Unlike `1 - load/cores`, it never reaches zero, so two overloaded hosts
/// still rank by how fast they are.
public struct EffectiveSpeed: Sendable, Equatable {
    public var value: Double
    /// `speed.unit`: figures in different units (benchmarks) are not compared.
    public var unit: String

    public init(value: Double, unit: String) {
        self.value = value
        self.unit = unit
    }

    /// From the `speed`, `speed.unit`, `load.1` and `cores` capabilities; nil when one of
    /// `speed`, `load.1` or `cores` is missing or not a number.
    public init?(_ capabilities: Capabilities) {
        guard let speed = capabilities["speed"].flatMap(Double.init), speed.isFinite, speed >= 0,
              let load = capabilities["load.1"].flatMap(Double.init), load.isFinite, load >= 0,
              let cores = capabilities["cores"].flatMap(Int.init), cores > 0 else { return nil }
        self.init(value: speed / (1 + load / Double(cores)), unit: capabilities["speed.unit"] ?? "")
    }
}

/// What placement weighs of one live worker of a stage.
public struct PlacementCandidate: Sendable, Equatable {
    /// The stage's `prefers` score (``Requirements/score(_:)``).
    public var preference: Int
    public var credit: Int
    /// Items sent to it and not yet finished.
    public var inFlight: Int
    /// Where `spread` counts it: its host (the `host` capability), not its process.
    public var host: String
    /// The host's cores, which `spread` weighs hosts by; at least 1.
    public var cores: Int
    public var speed: EffectiveSpeed?

    public init(preference: Int, credit: Int, inFlight: Int, host: String, cores: Int = 1, speed: EffectiveSpeed? = nil) {
        self.preference = preference
        self.credit = credit
        self.inFlight = inFlight
        self.host = host
        self.cores = max(1, cores)
        self.speed = speed
    }

    public var freeCredit: Int { credit - inFlight }

    /// The speed it still offers: its effective speed times the share of its credit that is free.
    /// An idle worker offers all of it; one whose credit is nearly used up offers little, because
    /// a new item would wait behind the ones it holds. So an idle slow worker beats a fast one
    /// that is nearly full, and the fast one wins again as it frees credit.
    var offeredSpeed: Double? {
        speed.map { $0.value * Double(freeCredit) / Double(max(1, credit)) }
    }
}

/// Chooses the worker that gets a stage's next items, from the stage's live workers fed one by one
/// (a single pass, so a pick costs O(workers of the stage)).
///
/// Only workers with free credit can be chosen. Among them, a higher preference score wins; then,
/// when every such worker announces a speed, a load and cores (in one unit), the higher
/// ``PlacementCandidate/offeredSpeed``; otherwise (and on a tie) more free credit; then the worker
/// fed first.
///
/// With `spread`, hosts come first. A host holding none of the stage's items may take one; any
/// other host only while, with it, it would hold no more items per core (over all its worker
/// processes) than the full host (none of its workers has free credit) holding the fewest. Of the
/// hosts that may, the one holding the fewest per core gets the next items, equal ones ordered by
/// their best worker by the rule above, and within it that best worker. So a host does not take
/// more items because it runs more worker processes; credit beyond its share stays unused.
public struct PlacementPicker<ID> {
    public struct Pick {
        public var id: ID
        /// Most items the pick may take now (spread: the host's room before it passes another); nil: its free credit.
        public var limit: Int?
    }

    private struct Leader {
        var byCredit: (id: ID, candidate: PlacementCandidate)?
        var bySpeed: (id: ID, candidate: PlacementCandidate)?

        mutating func consider(_ id: ID, _ candidate: PlacementCandidate) {
            if let current = byCredit?.candidate {
                if candidate.preference > current.preference
                    || (candidate.preference == current.preference && candidate.freeCredit > current.freeCredit) {
                    byCredit = (id, candidate)
                }
            } else {
                byCredit = (id, candidate)
            }
            guard let offered = candidate.offeredSpeed else { return }
            if let current = bySpeed?.candidate, let best = current.offeredSpeed {
                if PlacementPicker.ranksAbove(candidate, offered, current, best) { bySpeed = (id, candidate) }
            } else {
                bySpeed = (id, candidate)
            }
        }

        func best(speedsComparable: Bool) -> (id: ID, candidate: PlacementCandidate)? {
            speedsComparable ? bySpeed ?? byCredit : byCredit
        }
    }

    private struct Host {
        var inFlight = 0
        var cores = 1
        var leader = Leader()
    }

    public let spread: Bool
    private var overall = Leader()
    private var hosts: [Host] = []
    private var hostIndex: [String: Int] = [:]
    private var unit: String?
    private var speedsComparable = true

    public init(spread: Bool) { self.spread = spread }

    public mutating func consider(_ id: ID, _ candidate: PlacementCandidate) {
        let open = candidate.freeCredit > 0
        if open {
            if let speed = candidate.speed {
                if let unit, unit != speed.unit { speedsComparable = false }
                unit = unit ?? speed.unit
            } else {
                speedsComparable = false
            }
        }
        guard spread else {
            if open { overall.consider(id, candidate) }
            return
        }
        let index: Int
        if let known = hostIndex[candidate.host] {
            index = known
        } else {
            index = hosts.count
            hostIndex[candidate.host] = index
            hosts.append(Host())
        }
        hosts[index].inFlight += max(0, candidate.inFlight)
        hosts[index].cores = max(hosts[index].cores, candidate.cores)
        if open { hosts[index].leader.consider(id, candidate) }
    }

    /// The worker for the next items, or nil when none may take any now.
    public func pick() -> Pick? {
        guard spread else { return overall.best(speedsComparable: speedsComparable).map { Pick(id: $0.id, limit: nil) } }
        // The full host (no worker with free credit) holding the fewest items per core bounds the others.
        var bound: Host?
        for host in hosts where host.leader.byCredit == nil {
            if let current = bound, Self.compareOccupancy(host, current) >= 0 { continue }
            bound = host
        }
        var chosen: (index: Int, best: PlacementCandidate)?
        for (index, host) in hosts.enumerated() {
            guard let best = host.leader.best(speedsComparable: speedsComparable)?.candidate else { continue }
            if let bound, host.inFlight > 0, (host.inFlight + 1) * bound.cores > bound.inFlight * host.cores { continue }
            guard let current = chosen else {
                chosen = (index, best)
                continue
            }
            let order = Self.compareOccupancy(host, hosts[current.index])
            if order < 0 || (order == 0 && ranksAbove(best, current.best)) { chosen = (index, best) }
        }
        guard let chosen, let id = hosts[chosen.index].leader.best(speedsComparable: speedsComparable)?.id else { return nil }
        let host = hosts[chosen.index]
        // Room: up to the full host's items per core, and one item above the least occupied other open host.
        var limit: Int?
        if let bound { limit = bound.inFlight * host.cores / bound.cores - host.inFlight }
        var lowestOpen: Host?
        for (index, other) in hosts.enumerated() where index != chosen.index && other.leader.byCredit != nil {
            if let current = lowestOpen, Self.compareOccupancy(other, current) >= 0 { continue }
            lowestOpen = other
        }
        if let lowestOpen {
            let share = lowestOpen.inFlight * host.cores / lowestOpen.cores - host.inFlight + 1
            limit = min(limit ?? share, share)
        }
        return Pick(id: id, limit: limit.map { max(1, $0) })
    }

    /// Negative when `lhs` holds fewer items per core than `rhs`, zero when as many, positive when more.
    private static func compareOccupancy(_ lhs: Host, _ rhs: Host) -> Int {
        lhs.inFlight * rhs.cores - rhs.inFlight * lhs.cores
    }

    private func ranksAbove(_ candidate: PlacementCandidate, _ current: PlacementCandidate) -> Bool {
        if speedsComparable, let offered = candidate.offeredSpeed, let best = current.offeredSpeed {
            return Self.ranksAbove(candidate, offered, current, best)
        }
        return candidate.preference > current.preference
            || (candidate.preference == current.preference && candidate.freeCredit > current.freeCredit)
    }

    private static func ranksAbove(_ candidate: PlacementCandidate, _ offered: Double, _ current: PlacementCandidate, _ best: Double) -> Bool {
        if candidate.preference != current.preference { return candidate.preference > current.preference }
        if offered != best { return offered > best }
        return candidate.freeCredit > current.freeCredit
    }
}
