// What a worker process knows and announces about the machine it runs on.

import Foundation

/// Facts about this machine, announced as capabilities on READY.
public enum NodeInfo {
    public static var hostName: String { ProcessInfo.processInfo.hostName }

    public static var arch: String {
        #if arch(x86_64)
        "x86_64"
        #elseif arch(arm64)
        "arm64"
        #else
        "unknown"
        #endif
    }

    public static var os: String {
        #if os(Linux)
        "linux"
        #elseif os(macOS)
        "macos"
        #else
        "unknown"
        #endif
    }

    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }
    public static var memory: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }

    /// Whether a GPU is visible: an NVIDIA device node on Linux, Metal on Apple silicon Macs.
    public static var hasGPU: Bool {
        #if os(Linux)
        FileManager.default.fileExists(atPath: "/dev/nvidia0") || FileManager.default.fileExists(atPath: "/dev/dri/renderD128")
        #elseif os(macOS) && arch(arm64)
        true
        #else
        false
        #endif
    }

    /// The capabilities of a worker on this machine; `labels` may override `gpu` (label gpu=...).
    public static func capabilities(node: String, labels: [String: String], credit: Int, batch: Int) -> Capabilities {
        var capabilities = Capabilities([
            "protocol": MDP.lanComputeProtocol,
            "node": node,
            "host": hostName,
            "arch": arch,
            "os": os,
            "cores": String(cores),
            "memory": String(memory),
            "gpu": hasGPU ? "true" : "false",
            "credit": String(credit),
            "batch": String(batch),
            "pid": String(ProcessInfo.processInfo.processIdentifier),
        ])
        for (name, value) in labels {
            capabilities["label.\(name)"] = value
            if name == "gpu" { capabilities["gpu"] = value.isEmpty || value == "false" ? "false" : "true" }
        }
        return capabilities
    }
}
