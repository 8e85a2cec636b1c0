// What a worker process knows and announces about the machine it runs on.

import Foundation
import Logging

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

    /// This machine's fingerprint without the speed benchmark, detected once per process (GPU
    /// tools take time; every session and stage of a worker announces the same facts).
    public static let facts: Fingerprint = Fingerprint.detect(benchmark: false)

    /// ``facts`` with the speed benchmark's figure (about 100 ms, run at the first use).
    public static let fingerprint: Fingerprint = {
        var measured = facts
        measured.speed = SpeedBenchmark.run()
        return measured
    }()

    /// ``fingerprint`` when `measuringSpeed`, else ``facts``: workers that only this machine's
    /// workers compete with need no figure to rank machines by (``WorkerConfiguration/measuresSpeed``).
    public static func fingerprint(measuringSpeed: Bool) -> Fingerprint { measuringSpeed ? fingerprint : facts }

    /// Whether a GPU was detected: an NVIDIA GPU listed by nvidia-smi, or a Metal device.
    public static var hasGPU: Bool { !facts.gpus.isEmpty }

    /// The largest capabilities frame a worker sends, so a READY stays small whatever labels,
    /// GPU count or model names a machine has.
    public static let capabilitiesLimit = 4096
    /// The longest value in the frame; longer values (a model name, a label) are cut.
    public static let capabilityValueLimit = 256

    /// The capabilities of a worker on this machine; `labels` may override `gpu` (label gpu=...).
    /// The same for every call but the session's values: the facts were read once, at the first call.
    public static func capabilities(
        node: String, labels: [String: String], credit: Int, batch: Int, measuringSpeed: Bool = true,
        logger: Logger = Logger(label: "lancompute.worker")
    ) -> Capabilities {
        var fingerprint = fingerprint(measuringSpeed: measuringSpeed)
        fingerprint.labels = labels
        var values = fingerprint.capabilityValues
        values["protocol"] = MDP.lanComputeProtocol
        values["node"] = node
        values["credit"] = String(credit)
        values["batch"] = String(batch)
        values["pid"] = String(ProcessInfo.processInfo.processIdentifier)
        let (bounded, trimmed) = Capabilities(values).bounded(toBytes: capabilitiesLimit, valueBytes: capabilityValueLimit)
        if !trimmed.isEmpty {
            logger.warning("capabilities over \(capabilitiesLimit) bytes: cut or left out \(trimmed.joined(separator: ", "))")
        }
        return bounded
    }
}
