// Reading this machine's fingerprint from the system: /proc and sysfs on Linux, sysctl and Metal on macOS, nvidia-smi, a benchmark.

import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Metal)
import Metal
#endif

extension Fingerprint {
    /// The fingerprint of this machine. `benchmark`: run the speed benchmark (about 100 ms).
    /// `environment` supplies `PATH`, where nvidia-smi is looked for.
    public static func detect(
        workingDirectory: String = FileManager.default.currentDirectoryPath, labels: [String: String] = [:],
        benchmark: Bool = true, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "lancompute.fingerprint")
    ) -> Fingerprint {
        var notes: [String] = []
        let system = SystemFacts.read(notes: &notes)
        var fingerprint = Fingerprint(
            host: ProcessInfo.processInfo.hostName, os: system.os, arch: NodeInfo.arch, cpu: system.cpu,
            memory: system.memory, load: system.load, disk: freeDisk(at: workingDirectory), labels: labels)
        fingerprint.gpus = detectGPUs(environment: environment, notes: &notes, logger: logger)
        if benchmark { fingerprint.speed = SpeedBenchmark.run() }
        fingerprint.notes = notes
        return fingerprint
    }

    /// Reads again what changes while a worker runs: available memory, load, free disk, and the
    /// memory use and utilisation of NVIDIA GPUs. GPUs found at start stay listed (a failing
    /// nvidia-smi leaves their last figures) so placement never sees a GPU vanish mid-run.
    /// `gpus`: run nvidia-smi too (a subprocess, so it may block for up to `gpuTimeout`); without
    /// it only /proc (or sysctl) and statfs are read, which do not block.
    public mutating func refreshDynamic(
        gpus readGPUs: Bool = true, gpuTimeout: Duration = .seconds(5),
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "lancompute.fingerprint")
    ) {
        var notes: [String] = []
        let system = SystemFacts.read(notes: &notes)
        memory.availableBytes = system.memory.availableBytes ?? memory.availableBytes
        load = system.load ?? load
        if let path = disk?.path { disk = Self.freeDisk(at: path) ?? disk }
        guard readGPUs, gpus.contains(where: { $0.vendor == "nvidia" }) else { return }
        let fresh = Self.queryNvidia(environment: environment, timeout: gpuTimeout, notes: &notes, logger: logger)
        for position in gpus.indices where gpus[position].vendor == "nvidia" {
            guard let now = fresh.first(where: { $0.index == gpus[position].index }) else { continue }
            gpus[position].memoryUsedBytes = now.memoryUsedBytes
            gpus[position].utilizationPercent = now.utilizationPercent
        }
    }

    /// The arguments nvidia-smi is run with: one CSV line per GPU, no header, no units.
    public static let nvidiaSMIArguments = [
        "--query-gpu=index,name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits",
    ]

    /// The first executable file `name` in the directories of `path` (a `PATH` value), if any.
    public static func findExecutable(_ name: String, path: String?) -> String? {
        for directory in (path ?? "").split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
               access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    static func freeDisk(at path: String) -> Disk? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        let (bytes, overflow) = Int(stats.f_bavail).multipliedReportingOverflow(by: Int(stats.f_frsize))
        return overflow ? nil : Disk(path: path, freeBytes: bytes)
    }

    static func detectGPUs(environment: [String: String], notes: inout [String], logger: Logger) -> [GPU] {
        var gpus = queryNvidia(environment: environment, notes: &notes, logger: logger)
        #if canImport(Metal)
        if gpus.isEmpty, let device = MTLCreateSystemDefaultDevice() {
            let workingSet = device.recommendedMaxWorkingSetSize
            gpus.append(GPU(index: 0, vendor: "apple", model: device.name,
                            memoryTotalBytes: workingSet > UInt64(Int.max) ? nil : Int(workingSet),
                            unifiedMemory: device.hasUnifiedMemory))
        }
        #endif
        return gpus
    }

    /// NVIDIA GPUs as nvidia-smi lists them; none, with a note and a log line saying why, when it
    /// is missing, fails, hangs or prints nothing that parses.
    static func queryNvidia(
        environment: [String: String], timeout: Duration = .seconds(5), notes: inout [String], logger: Logger
    ) -> [GPU] {
        guard let executable = findExecutable("nvidia-smi", path: environment["PATH"]) else {
            notes.append("no NVIDIA GPU: nvidia-smi is not on PATH")
            logger.debug("no NVIDIA GPU: nvidia-smi is not on PATH")
            return []
        }
        func noGPU(_ reason: String) -> [GPU] {
            notes.append("no NVIDIA GPU: \(reason)")
            logger.notice("no NVIDIA GPU: \(reason)")
            return []
        }
        let run: (status: Int32, output: String)
        switch ToolRun.run(executable, arguments: nvidiaSMIArguments, timeout: timeout) {
        case .failure(let reason): return noGPU("\(executable) \(reason)")
        case .success(let result): run = result
        }
        guard run.status == 0 else {
            let first = run.output.split(separator: "\n").first.map { FingerprintParsers.excerpt(String($0)) } ?? "no output"
            return noGPU("\(executable) exited with status \(run.status): \(first)")
        }
        let parsed = FingerprintParsers.nvidiaSMI(run.output)
        for problem in parsed.problems.prefix(3) { logger.notice("\(problem)") }
        if parsed.gpus.isEmpty {
            return noGPU(parsed.problems.first.map { "\(executable) listed no GPU (\($0))" } ?? "\(executable) listed no GPU")
        }
        notes += parsed.problems
        return parsed.gpus
    }
}

/// Runs a short-lived tool and collects its standard output, within a deadline.
///
/// posix_spawn rather than Foundation's `Process`: the tool gets a process group of its own, so a
/// tool that hangs is killed with everything it started (a wrapper script's children would
/// otherwise keep its output pipe, and `Process.waitUntilExit`, open long past the deadline).
enum ToolRun {
    struct ToolFailure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    static let outputLimit = 1 << 20

    static func run(_ executable: String, arguments: [String], timeout: Duration) -> Result<(status: Int32, output: String), ToolFailure> {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return .failure(ToolFailure("could not be started: pipe: \(String(cString: strerror(errno)))")) }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Close-on-exec, so that no other child of this process inherits them; dup2 below clears it for the tool's stdout.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
        defer { close(readEnd) }

        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(writeEnd)
        guard spawned == 0 else { return .failure(ToolFailure("could not be started: \(String(cString: strerror(spawned)))")) }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        var finished = false
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 10)
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count > 0 {
                if output.count < outputLimit { output += buffer[0..<count] }
            } else if count == 0 {
                finished = true
                break
            } else if errno != EAGAIN && errno != EINTR {
                break
            }
        }
        if !finished {
            kill(-pid, SIGKILL)
            var ignored: Int32 = 0
            while waitpid(pid, &ignored, 0) < 0 && errno == EINTR {}
            return .failure(ToolFailure("did not answer within \(timeout)"))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return .failure(ToolFailure("could not be waited for: \(String(cString: strerror(errno)))")) }
        }
        // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
        let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        guard let text = String(validating: output, as: UTF8.self) else {
            return .failure(ToolFailure("printed something that is not UTF-8"))
        }
        return .success((exitStatus, text))
    }
}

/// The facts read from the OS itself (no external tool).
struct SystemFacts {
    var os: Fingerprint.OperatingSystem
    var cpu: Fingerprint.CPU
    var memory: Fingerprint.Memory
    var load: Fingerprint.LoadAverages?

    static func read(notes: inout [String]) -> SystemFacts {
        let logical = ProcessInfo.processInfo.activeProcessorCount
        let physicalMemory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        #if os(Linux)
        let cpuInfo = FingerprintParsers.cpuInfo(readText("/proc/cpuinfo") ?? "")
        let memInfo = readText("/proc/meminfo").flatMap(FingerprintParsers.memInfo)
        if memInfo == nil { notes.append("/proc/meminfo is unreadable; memory from the process's view") }
        let topology = (0..<logical.clamped(to: 1...4096)).compactMap { cpu -> (package: String, core: String)? in
            let base = "/sys/devices/system/cpu/cpu\(cpu)/topology"
            guard let package = readText("\(base)/physical_package_id"), let core = readText("\(base)/core_id") else { return nil }
            return (package, core)
        }
        return SystemFacts(
            os: .init(name: NodeInfo.os, version: readText("/etc/os-release").flatMap(FingerprintParsers.osRelease), kernel: kernelRelease()),
            cpu: .init(model: cpuInfo.model, physicalCores: FingerprintParsers.physicalCores(topology: topology) ?? cpuInfo.physicalCores,
                       logicalCores: logical),
            memory: .init(totalBytes: memInfo?.total ?? physicalMemory, availableBytes: memInfo?.available),
            load: readText("/proc/loadavg").flatMap(FingerprintParsers.loadAverage))
        #elseif os(macOS)
        return SystemFacts(
            os: .init(name: NodeInfo.os, version: sysctlString("kern.osproductversion"), kernel: kernelRelease()),
            cpu: .init(model: sysctlString("machdep.cpu.brand_string"), physicalCores: sysctlInt("hw.physicalcpu"), logicalCores: logical),
            memory: .init(totalBytes: sysctlInt("hw.memsize") ?? physicalMemory, availableBytes: machAvailableMemory()),
            load: systemLoadAverage())
        #else
        return SystemFacts(os: .init(name: NodeInfo.os), cpu: .init(logicalCores: logical),
                           memory: .init(totalBytes: physicalMemory), load: nil)
        #endif
    }

    static func readText(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    static func kernelRelease() -> String? {
        var name = utsname()
        guard uname(&name) == 0 else { return nil }
        return withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    #if os(macOS)
    static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    static func sysctlInt(_ name: String) -> Int? {
        var value: Int64 = 0
        var size = MemoryLayout<Int64>.size
        guard sysctlbyname(name, &value, &size, nil, 0) == 0 else { return nil }
        // Some values are 32-bit (hw.physicalcpu): the upper half is then left zero.
        return size == 4 ? Int(Int32(truncatingIfNeeded: value)) : Int(value)
    }

    static func systemLoadAverage() -> Fingerprint.LoadAverages? {
        var loads = [Double](repeating: 0, count: 3)
        guard getloadavg(&loads, 3) == 3 else { return nil }
        return Fingerprint.LoadAverages(one: loads[0], five: loads[1], fifteen: loads[2])
    }

    /// Free plus inactive pages: what the kernel hands to new work without swapping.
    static func machAvailableMemory() -> Int? {
        var stats = vm_statistics64()
        var count = mach_msg_type_number_t(MemoryLayout<vm_statistics64_data_t>.size / MemoryLayout<integer_t>.size)
        let result = withUnsafeMutablePointer(to: &stats) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { host_statistics64(mach_host_self(), HOST_VM_INFO64, $0, &count) }
        }
        guard result == KERN_SUCCESS else { return nil }
        return (Int(stats.free_count) + Int(stats.inactive_count)) * Int(getpagesize())
    }
    #endif
}

/// A bounded single-thread benchmark: FNV-1a over a 64 KiB buffer for about 100 ms (never more
/// than 200 ms), reported in MB/s. FNV-1a is one multiply per byte with a dependency between
/// bytes, so the figure follows scalar integer speed and is not inflated by vector units.
enum SpeedBenchmark {
    static let name = "fnv1a-64KiB-1thread"

    static func run(target: Duration = .milliseconds(100)) -> Fingerprint.Speed {
        let buffer = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let clock = ContinuousClock()
        let limit = min(target, .milliseconds(200))
        let start = clock.now
        var bytes = 0
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        // Stops at the first buffer pass after the target: a pass takes well under a millisecond
        // in a release build, a few in a debug build.
        while clock.now - start < limit {
            for byte in buffer {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01B3
            }
            bytes += buffer.count
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var value = Double(bytes) / max(seconds, 1e-9) / 1e6
        // The result depends on the hash (all but never by this branch), so the loop cannot be optimised away.
        if hash == 0x5EED { value += 0.01 }
        return Fingerprint.Speed(value: (value * 10).rounded() / 10, unit: "MB/s", benchmark: name,
                                 durationMs: Int((seconds * 1000).rounded()))
    }
}

extension Comparable {
    fileprivate func clamped(to range: ClosedRange<Self>) -> Self { min(max(self, range.lowerBound), range.upperBound) }
}
