// The typed description of a machine (`lancompute node`), its JSON form and the capabilities it announces.

import Foundation

/// What a machine offers a pipeline: hardware, OS, load, GPUs, a measured speed and the user's labels.
///
/// The JSON form (``jsonData()``) is specified in `Docs/cluster.md`; its keys are snake_case and
/// `schema` says which revision of that layout a document follows.
public struct Fingerprint: Codable, Sendable, Equatable {
    /// The revision of the JSON layout; bumped when a field changes meaning or goes away.
    public static let schemaVersion = 1

    public var schema: Int = Fingerprint.schemaVersion
    public var host: String
    public var os: OperatingSystem
    /// `x86_64` or `arm64` (the names `requires.arch` compares with).
    public var arch: String
    public var cpu: CPU
    public var memory: Memory
    public var load: LoadAverages?
    public var disk: Disk?
    /// Every GPU found, in the order the vendor's tool lists them; empty: none found.
    public var gpus: [GPU]
    public var speed: Speed?
    public var labels: [String: String]
    /// Why a source was not used or a value is missing (no nvidia-smi, garbage output, ...).
    public var notes: [String]

    public struct OperatingSystem: Codable, Sendable, Equatable {
        /// `linux` or `macos`.
        public var name: String
        /// The distribution and its version (`Ubuntu 24.04.1 LTS`), or the macOS version (`15.1`).
        public var version: String?
        /// The kernel release, as `uname -r` prints it.
        public var kernel: String?
    }

    public struct CPU: Codable, Sendable, Equatable {
        public var model: String?
        /// Cores without hyperthreads; nil when the system does not say.
        public var physicalCores: Int?
        /// Logical processors (hardware threads) the process may use.
        public var logicalCores: Int
    }

    public struct Memory: Codable, Sendable, Equatable {
        public var totalBytes: Int
        /// Memory that can be given to new work without swapping (Linux `MemAvailable`).
        public var availableBytes: Int?
    }

    public struct LoadAverages: Codable, Sendable, Equatable {
        public var one: Double
        public var five: Double
        public var fifteen: Double
    }

    public struct Disk: Codable, Sendable, Equatable {
        /// The directory measured: the worker's working directory.
        public var path: String
        /// Bytes an unprivileged process may still write there.
        public var freeBytes: Int
    }

    public struct GPU: Codable, Sendable, Equatable {
        /// The vendor tool's index (nvidia-smi), or 0 for the Metal device.
        public var index: Int
        /// `nvidia` or `apple` (any Metal device, named by `model`).
        public var vendor: String
        public var model: String
        public var memoryTotalBytes: Int?
        public var memoryUsedBytes: Int?
        /// Percent of time a kernel ran over the last sample period (nvidia-smi's `utilization.gpu`).
        public var utilizationPercent: Int?
        /// The GPU shares the system's memory (Apple silicon); `memoryTotalBytes` is then Metal's
        /// recommended working-set size, not a separate memory.
        public var unifiedMemory: Bool?

        public init(index: Int, vendor: String, model: String, memoryTotalBytes: Int? = nil, memoryUsedBytes: Int? = nil,
                    utilizationPercent: Int? = nil, unifiedMemory: Bool? = nil) {
            self.index = index
            self.vendor = vendor
            self.model = model
            self.memoryTotalBytes = memoryTotalBytes
            self.memoryUsedBytes = memoryUsedBytes
            self.utilizationPercent = utilizationPercent
            self.unifiedMemory = unifiedMemory
        }
    }

    /// A figure from a short benchmark run at start: higher is faster.
    public struct Speed: Codable, Sendable, Equatable {
        public var value: Double
        public var unit: String
        /// What was measured, so figures from different versions are not compared blindly.
        public var benchmark: String
        public var durationMs: Int
    }

    public init(host: String, os: OperatingSystem, arch: String, cpu: CPU, memory: Memory, load: LoadAverages? = nil,
                disk: Disk? = nil, gpus: [GPU] = [], speed: Speed? = nil, labels: [String: String] = [:], notes: [String] = []) {
        self.host = host
        self.os = os
        self.arch = arch
        self.cpu = cpu
        self.memory = memory
        self.load = load
        self.disk = disk
        self.gpus = gpus
        self.speed = speed
        self.labels = labels
        self.notes = notes
    }

    // MARK: JSON

    /// The JSON document `lancompute node` prints: snake_case keys, sorted, pretty-printed.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    public init(json: Data) throws {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        self = try decoder.decode(Fingerprint.self, from: json)
    }

    // MARK: Capabilities

    /// The capability properties this fingerprint announces (without the session's `node`,
    /// `credit`, `batch`, `protocol` and `pid`). `gpu` is true when a GPU was found or a `gpu`
    /// label says so; a label `gpu=false` (or empty) hides a GPU that was found.
    public var capabilityValues: [String: String] {
        var values: [String: String] = [
            "host": host,
            "arch": arch,
            "os": os.name,
            "cores": String(cpu.logicalCores),
            "memory": String(memory.totalBytes),
            "gpu": gpus.isEmpty ? "false" : "true",
            "gpu.count": String(gpus.count),
        ]
        values["os.version"] = os.version
        values["kernel"] = os.kernel
        values["cpu.model"] = cpu.model
        values["cpu.physical-cores"] = cpu.physicalCores.map(String.init)
        if let first = gpus.first {
            values["gpu.model"] = first.model
            values["gpu.vendor"] = first.vendor
            values["gpu.memory"] = first.memoryTotalBytes.map(String.init)
            if let unified = first.unifiedMemory { values["gpu.unified-memory"] = unified ? "true" : "false" }
        }
        for gpu in gpus {
            values["gpu.\(gpu.index).model"] = gpu.model
            values["gpu.\(gpu.index).memory"] = gpu.memoryTotalBytes.map(String.init)
        }
        if let speed {
            values["speed"] = String(format: "%.1f", speed.value)
            values["speed.unit"] = speed.unit
        }
        values.merge(dynamicCapabilityValues) { _, new in new }
        for (name, value) in labels {
            values["label.\(name)"] = value
            if name == "gpu" { values["gpu"] = value.isEmpty || value == "false" ? "false" : "true" }
        }
        return values
    }

    /// The properties that change while a worker runs, as a capabilities refresh carries them.
    public var dynamicCapabilityValues: [String: String] {
        var values: [String: String] = [:]
        values["memory.available"] = memory.availableBytes.map(String.init)
        if let load {
            values["load.1"] = String(format: "%.2f", load.one)
            values["load.5"] = String(format: "%.2f", load.five)
            values["load.15"] = String(format: "%.2f", load.fifteen)
        }
        values["disk.free"] = disk.map { String($0.freeBytes) }
        for gpu in gpus {
            values["gpu.\(gpu.index).memory.used"] = gpu.memoryUsedBytes.map(String.init)
            values["gpu.\(gpu.index).utilization"] = gpu.utilizationPercent.map(String.init)
        }
        return values
    }

    /// Whether a capabilities refresh may change `name`. Everything placement decided on at READY
    /// (arch, os, cores, memory, gpu, labels) and the session's own keys stay as announced then.
    public static func isDynamicCapability(_ name: String) -> Bool {
        switch name {
        case "memory.available", "load.1", "load.5", "load.15", "disk.free": return true
        // The owner policy's state and the load that set it (Docs/cluster.md, owner policy).
        case "yielding", "owner.load": return true
        default: break
        }
        // gpu.N.memory.used, gpu.N.utilization
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "gpu", Int(parts[1]) != nil else { return false }
        let rest = parts.dropFirst(2).joined(separator: ".")
        return rest == "memory.used" || rest == "utilization"
    }
}
