// Matching stage requirements and preferences against what a worker announced.

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

    /// How many of these (preferred) properties `capabilities` have; higher is better.
    public func score(_ capabilities: Capabilities) -> Int {
        var score = 0
        if let arch, Self.normalisedArch(capabilities["arch"] ?? "") == Self.normalisedArch(arch) { score += 1 }
        if let os, (capabilities["os"] ?? "").lowercased() == os.lowercased() { score += 1 }
        if let gpu, (capabilities["gpu"] == "true") == gpu { score += 1 }
        if let minMemory, (capabilities["memory"].flatMap(Int.init) ?? 0) >= minMemory { score += 1 }
        if let minCores, (capabilities["cores"].flatMap(Int.init) ?? 0) >= minCores { score += 1 }
        let labels = capabilities.labels
        for (name, value) in self.labels where labels[name] == value { score += 1 }
        return score
    }

    static func normalisedArch(_ arch: String) -> String {
        switch arch.lowercased() {
        case "aarch64", "arm64": "arm64"
        case "amd64", "x86_64", "x86-64": "x86_64"
        default: arch.lowercased()
        }
    }
}
