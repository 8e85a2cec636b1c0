// Pure parsers for the text a fingerprint is read from: /proc files, os-release, sysfs topology, nvidia-smi.

/// Each parser takes the text as read and returns what it could find; none touches the system,
/// so each is tested on sample files (and on garbage).
public enum FingerprintParsers {
    /// What `/proc/cpuinfo` says about the processor.
    public struct CPUInfo: Equatable, Sendable {
        public var model: String?
        /// `processor` entries.
        public var logicalCores: Int
        /// Distinct (`physical id`, `core id`) pairs; nil when the file has no such fields (ARM).
        public var physicalCores: Int?
    }

    /// `/proc/cpuinfo`: the model from `model name` (x86, most ARM kernels), else `Hardware`,
    /// `Model` or `cpu model` (boards and other architectures).
    public static func cpuInfo(_ text: String) -> CPUInfo {
        var model: String?
        var fallbackModel: String?
        var logical = 0
        var cores = Set<String>()
        var physicalID = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingWhitespace()
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            switch key {
            case "processor": logical += 1
            case "model name" where model == nil && !value.isEmpty: model = value
            case "Hardware", "Model", "cpu model":
                if fallbackModel == nil && !value.isEmpty { fallbackModel = value }
            case "physical id": physicalID = value
            case "core id": cores.insert("\(physicalID)/\(value)")
            default: break
            }
        }
        return CPUInfo(model: model ?? fallbackModel, logicalCores: logical, physicalCores: cores.isEmpty ? nil : cores.count)
    }

    /// Physical cores from sysfs topology: one (`physical_package_id`, `core_id`) pair per online
    /// logical CPU (`/sys/devices/system/cpu/cpuN/topology/`); nil when there is no pair to count.
    public static func physicalCores(topology: [(package: String, core: String)]) -> Int? {
        let distinct = Set(topology.map { "\($0.package.trimmingWhitespace())/\($0.core.trimmingWhitespace())" })
        return distinct.isEmpty ? nil : distinct.count
    }

    /// `/proc/meminfo`: total and available bytes. Kernels before 3.14 have no `MemAvailable`;
    /// then free + buffers + cached stands in for it. Nil when `MemTotal` is missing.
    public static func memInfo(_ text: String) -> (total: Int, available: Int?)? {
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let words = line[line.index(after: colon)...].split(separator: " ")
            guard let number = words.first.flatMap({ Int($0) }), number >= 0 else { continue }
            let unit = words.count > 1 ? words[1].lowercased() : ""
            // The kernel writes "kB" and means KiB.
            let (bytes, overflow) = number.multipliedReportingOverflow(by: unit == "kb" ? 1024 : 1)
            if !overflow { fields[key] = bytes }
        }
        guard let total = fields["MemTotal"], total > 0 else { return nil }
        if let available = fields["MemAvailable"] { return (total, available) }
        if let free = fields["MemFree"] {
            return (total, free + (fields["Buffers"] ?? 0) + (fields["Cached"] ?? 0))
        }
        return (total, nil)
    }

    /// `/proc/loadavg`: `0.52 0.58 0.59 1/467 12345`.
    public static func loadAverage(_ text: String) -> Fingerprint.LoadAverages? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard words.count >= 3, let one = Double(words[0]), let five = Double(words[1]), let fifteen = Double(words[2]),
              [one, five, fifteen].allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
        return Fingerprint.LoadAverages(one: one, five: five, fifteen: fifteen)
    }

    /// `/etc/os-release`: `PRETTY_NAME`, else `NAME VERSION_ID`.
    public static func osRelease(_ text: String) -> String? {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "="), !line.hasPrefix("#") else { continue }
            var value = line[line.index(after: equals)...].trimmingWhitespace()
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            fields[String(line[..<equals])] = value
        }
        if let pretty = fields["PRETTY_NAME"], !pretty.isEmpty { return pretty }
        guard let name = fields["NAME"], !name.isEmpty else { return nil }
        return [name, fields["VERSION_ID"]].compactMap { $0 }.joined(separator: " ")
    }

    /// What nvidia-smi said: the GPUs on lines that parsed, and why the others did not.
    public struct NvidiaSMIResult: Equatable, Sendable {
        public var gpus: [Fingerprint.GPU]
        public var problems: [String]
    }

    /// The output of `nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu
    /// --format=csv,noheader,nounits`: one GPU a line, `0, NVIDIA A100-SXM4-40GB, 40960, 3, 0`,
    /// memory in MiB and utilisation in percent. A line that is not such a record (a driver warning,
    /// garbage) is skipped with a problem; `[N/A]` or `[Not Supported]` in the last two fields leaves
    /// them unknown. A GPU name with a comma survives: the name is everything between the index and
    /// the last three fields.
    public static func nvidiaSMI(_ text: String) -> NvidiaSMIResult {
        var gpus: [Fingerprint.GPU] = []
        var problems: [String] = []
        var seen = Set<Int>()
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }
            guard fields.count >= 5 else {
                problems.append("nvidia-smi line \(number + 1) is not a GPU record: \(excerpt(line))")
                continue
            }
            let name = fields[1..<(fields.count - 3)].joined(separator: ", ")
            guard let index = Int(fields[0]), index >= 0, !seen.contains(index), !name.isEmpty,
                  let memoryMiB = Int(fields[fields.count - 3]), memoryMiB >= 0,
                  name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                problems.append("nvidia-smi line \(number + 1) is not a GPU record: \(excerpt(line))")
                continue
            }
            seen.insert(index)
            let usedMiB = Int(fields[fields.count - 2]).flatMap { $0 >= 0 ? $0 : nil }
            let utilization = Int(fields[fields.count - 1]).flatMap { (0...100).contains($0) ? $0 : nil }
            gpus.append(Fingerprint.GPU(
                index: index, vendor: "nvidia", model: name, memoryTotalBytes: mebibytes(memoryMiB),
                memoryUsedBytes: usedMiB.flatMap(mebibytes), utilizationPercent: utilization))
        }
        return NvidiaSMIResult(gpus: gpus, problems: problems)
    }

    private static func mebibytes(_ count: Int) -> Int? {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: 1 << 20)
        return overflow ? nil : bytes
    }

    /// The start of a line, for a log message about it.
    static func excerpt(_ line: String) -> String {
        let printable = String(String.UnicodeScalarView(line.unicodeScalars.prefix(80).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
        return line.unicodeScalars.count > 80 ? "\"\(printable)...\"" : "\"\(printable)\""
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
