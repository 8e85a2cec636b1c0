// The owner policy: how busy the rest of the machine is (CPU time not the worker's), and when to yield and resume.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CPU time counters read at one instant, in seconds of CPU time (summed over cores).
struct CPUTimes: Equatable, Sendable {
    /// What every process of the machine used since boot (not idle, not waiting for I/O).
    var machineBusy: Double
    /// What this worker and its descendants used: running ones, and the finished ones it waited for.
    var own: Double

    /// Cores the rest of the machine kept busy between `earlier` and this sample, `elapsed` apart.
    /// Never below zero: the two counters are read a moment apart and their rounding differs.
    func otherLoad(since earlier: CPUTimes, elapsed: Duration) -> Double {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard seconds > 0 else { return 0 }
        let other = (machineBusy - earlier.machineBusy) - (own - earlier.own)
        return max(0, other / seconds)
    }
}

/// The lines of Linux's /proc this policy reads, parsed without touching the filesystem.
enum ProcCPU {
    /// One process's line of `/proc/PID/stat`, the fields the policy needs (in clock ticks).
    struct ProcessTimes: Equatable, Sendable {
        var pid: Int32
        var parent: Int32
        /// utime + stime: what the process itself used.
        var ownTicks: UInt64
        /// cutime + cstime: what its children that it waited for used.
        var childrenTicks: UInt64
    }

    /// Busy ticks of the `cpu` line of `/proc/stat`: user, nice, system, irq, softirq and steal
    /// (guest time is inside user already; idle and iowait are not busy). Nil if the line is missing or short.
    static func machineBusyTicks(procStat: String) -> UInt64? {
        guard let line = procStat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().map { UInt64($0) }
        guard fields.count >= 8, fields.allSatisfy({ $0 != nil }) else { return nil }
        let values = fields.map { $0! }
        // user nice system idle iowait irq softirq steal [guest guest_nice]
        return values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    }

    /// `/proc/PID/stat`: the command name is in parentheses and may hold spaces and parentheses
    /// itself, so the fields are counted from its last `)`. Nil for a line that does not parse.
    static func processTimes(procPIDStat line: String) -> ProcessTimes? {
        guard let open = line.firstIndex(of: "("), let close = line.lastIndex(of: ")"),
              let pid = Int32(line[..<open].trimmingCharacters(in: .whitespaces)) else { return nil }
        // After the name: state (3), ppid (4), ... utime (14), stime (15), cutime (16), cstime (17).
        let rest = line[line.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard rest.count >= 15, let parent = Int32(rest[1]),
              let user = UInt64(rest[11]), let system = UInt64(rest[12]),
              let childrenUser = Int64(rest[13]), let childrenSystem = Int64(rest[14]) else { return nil }
        return ProcessTimes(pid: pid, parent: parent, ownTicks: user + system,
                            childrenTicks: UInt64(max(0, childrenUser)) + UInt64(max(0, childrenSystem)))
    }

    /// Ticks used by `root` and every process below it among `processes`: each one's own time and
    /// what its finished children used (a child that ends moves its time into its parent's children
    /// time when the parent waits for it, so the sum does not jump).
    static func treeTicks(root: Int32, processes: [ProcessTimes]) -> UInt64 {
        var children: [Int32: [ProcessTimes]] = [:]
        var rootTimes: ProcessTimes?
        for process in processes {
            if process.pid == root { rootTimes = process } else { children[process.parent, default: []].append(process) }
        }
        guard let rootTimes else { return 0 }
        var total: UInt64 = 0
        var stack = [rootTimes]
        var seen: Set<Int32> = []
        while let process = stack.popLast(), seen.insert(process.pid).inserted {
            total += process.ownTicks + process.childrenTicks
            stack += children[process.pid] ?? []
        }
        return total
    }
}

/// Reads the counters of this machine and of this process: /proc on Linux; on macOS the host's CPU
/// ticks (`host_statistics`) and this process's and its waited-for children's `getrusage`.
struct CPUTimesReader: Sendable {
    /// The counters now, or nil if the system does not give them (the worker then never yields).
    func read() -> CPUTimes? {
        #if os(Linux)
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard ticksPerSecond > 0,
              let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let busy = ProcCPU.machineBusyTicks(procStat: stat) else { return nil }
        let root = getpid()
        var processes: [ProcCPU.ProcessTimes] = []
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries where entry.first?.isNumber == true {
            // A process may end between the listing and the read: it is then simply not counted.
            guard let line = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let times = ProcCPU.processTimes(procPIDStat: line) else { continue }
            processes.append(times)
        }
        let own = ProcCPU.treeTicks(root: root, processes: processes)
        return CPUTimes(machineBusy: Double(busy) / ticksPerSecond, own: Double(own) / ticksPerSecond)
        #elseif canImport(Darwin)
        var load = host_cpu_load_info()
        var count = mach_msg_type_number_t(MemoryLayout<host_cpu_load_info_data_t>.size / MemoryLayout<integer_t>.size)
        let status = withUnsafeMutablePointer(to: &load) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                host_statistics(mach_host_self(), HOST_CPU_LOAD_INFO, $0, &count)
            }
        }
        guard status == KERN_SUCCESS else { return nil }
        let ticks = load.cpu_ticks
        let busyTicks = Double(ticks.0) + Double(ticks.1) + Double(ticks.3)  // user, system, nice (2 is idle)
        let ticksPerSecond = Double(sysconf(_SC_CLK_TCK))
        guard ticksPerSecond > 0 else { return nil }
        func seconds(_ usage: rusage) -> Double {
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        }
        var own = rusage()
        var children = rusage()
        getrusage(RUSAGE_SELF, &own)
        getrusage(RUSAGE_CHILDREN, &children)
        // Children still running (exec stream children) are not in RUSAGE_CHILDREN until they end:
        // on macOS their time counts as other load while they run (Docs/cluster.md says so).
        return CPUTimes(machineBusy: busyTicks / ticksPerSecond, own: seconds(own) + seconds(children))
        #else
        return nil
        #endif
    }
}

/// When a worker yields to its machine's owner, and when it comes back: pure, fed measurements with the time.
///
/// It yields once every measurement for `yieldAfter` has been above `threshold`, and resumes once
/// every measurement for `resumeAfter` has been at or below it: a short burst does not stop the
/// worker, and a lull between the owner's compiles does not bring it back.
struct OwnerPolicy: Sendable, Equatable {
    /// Other load, in cores, above which the machine counts as in use by its owner.
    let threshold: Double
    let yieldAfter: Duration
    let resumeAfter: Duration
    private(set) var isYielding = false
    /// Since when the measurements have been on the other side of the threshold than the state.
    private var crossedSince: ContinuousClock.Instant?

    static let defaultFraction = 0.5
    static let defaultYieldAfter = Duration.seconds(3)
    static let defaultResumeAfter = Duration.seconds(10)

    init(threshold: Double, yieldAfter: Duration = Self.defaultYieldAfter, resumeAfter: Duration = Self.defaultResumeAfter) {
        self.threshold = threshold
        self.yieldAfter = yieldAfter
        self.resumeAfter = resumeAfter
    }

    enum Change: Equatable, Sendable { case yield, resume }

    /// Takes one measurement (other load in cores, over the interval that ends `now`); returns the change it causes.
    mutating func observe(otherLoad: Double, at now: ContinuousClock.Instant) -> Change? {
        let crossed = isYielding ? otherLoad <= threshold : otherLoad > threshold
        guard crossed else {
            crossedSince = nil
            return nil
        }
        let since = crossedSince ?? now
        crossedSince = since
        guard now - since >= (isYielding ? resumeAfter : yieldAfter) else { return nil }
        isYielding.toggle()
        crossedSince = nil
        return isYielding ? .yield : .resume
    }
}
