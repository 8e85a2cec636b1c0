// Reads this machine's changing facts (load, memory, disk, GPU use) on a thread of its own, for the worker's refreshes.

import Foundation
import Logging
import Synchronization

/// Reads the dynamic part of the fingerprint again every ``interval`` (nvidia-smi every
/// ``gpuInterval``, within ``gpuTimeout``) off the worker's I/O thread, which only picks up the
/// latest reading with ``take()``: a slow or hung nvidia-smi never holds up sockets or heartbeats.
final class FingerprintSampler: Sendable {
    /// How often /proc (or sysctl) and the free disk are read: cheap reads.
    static let interval = Duration.seconds(5)
    /// How often nvidia-smi runs: a subprocess, so less often.
    static let gpuInterval = Duration.seconds(10)
    /// How long one nvidia-smi run may take before it is killed (its GPU figures then stay as they were).
    static let gpuTimeout = Duration.seconds(2)

    private struct State {
        /// The latest reading not yet taken.
        var fresh: [String: String]?
        var stopped = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    /// Starts reading from `fingerprint` (the one READY announced), logging to `logger`.
    init(fingerprint: Fingerprint, logger: Logger) {
        // nvidia-smi failing again and again is said once at start (Fingerprint.detect); not every 10 s.
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let thread = Thread { [self, quiet] in self.loop(fingerprint, logger: quiet) }
        thread.name = "lancompute-fingerprint"
        thread.start()
    }

    /// The dynamic capability values read since the last call, if any.
    func take() -> [String: String]? {
        state.withLock { state in
            defer { state.fresh = nil }
            return state.fresh
        }
    }

    /// Ends the reading thread (at once when it waits; after the read in progress otherwise).
    func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    private func loop(_ start: Fingerprint, logger: Logger) {
        var fingerprint = start
        var lastGPURead = ContinuousClock.now
        while true {
            let seconds = Double(Self.interval.components.seconds) + Double(Self.interval.components.attoseconds) / 1e18
            if wake.wait(timeout: .now() + seconds) == .success { return }
            if state.withLock({ $0.stopped }) { return }
            let readGPUs = ContinuousClock.now - lastGPURead >= Self.gpuInterval - .milliseconds(100)
            if readGPUs { lastGPURead = .now }
            fingerprint.refreshDynamic(gpus: readGPUs, gpuTimeout: Self.gpuTimeout, logger: logger)
            let values = fingerprint.dynamicCapabilityValues
            let stopped = state.withLock { state in
                if !state.stopped { state.fresh = values }
                return state.stopped
            }
            if stopped { return }
        }
    }
}
