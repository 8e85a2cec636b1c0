// The fingerprint's parsers on sample /proc files, sysfs topology, os-release and nvidia-smi output (and garbage); its JSON and capabilities.

import Foundation
import Testing
@testable import LANCompute

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.timeLimit(.minutes(1))) struct FingerprintTests {
    static let x86CPUInfo = """
        processor\t: 0
        vendor_id\t: GenuineIntel
        model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
        physical id\t: 0
        core id\t\t: 0

        processor\t: 1
        model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
        physical id\t: 0
        core id\t\t: 1

        processor\t: 2
        model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
        physical id\t: 0
        core id\t\t: 0

        processor\t: 3
        model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
        physical id\t: 0
        core id\t\t: 1

        """

    static let raspberryPiCPUInfo = """
        processor\t: 0
        BogoMIPS\t: 108.00
        CPU part\t: 0xd08

        processor\t: 1
        BogoMIPS\t: 108.00

        Hardware\t: BCM2835
        Model\t\t: Raspberry Pi 4 Model B Rev 1.4
        """

    @Test func cpuInfoOnX86CountsHyperthreadsOnce() {
        let info = FingerprintParsers.cpuInfo(Self.x86CPUInfo)
        #expect(info == .init(model: "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", logicalCores: 4, physicalCores: 2))
    }

    @Test func cpuInfoOnARMFallsBackToTheBoardName() {
        let info = FingerprintParsers.cpuInfo(Self.raspberryPiCPUInfo)
        #expect(info == .init(model: "BCM2835", logicalCores: 2, physicalCores: nil))
    }

    @Test func cpuInfoOfGarbageFindsNothing() {
        #expect(FingerprintParsers.cpuInfo("\u{0}\u{1}garbage:\n::::\n") == .init(model: nil, logicalCores: 0, physicalCores: nil))
    }

    @Test func sysfsTopologyCountsDistinctCoresPerPackage() {
        let topology: [(package: String, core: String)] = [("0\n", "0\n"), ("0\n", "1\n"), ("0", "0"), ("1", "0"), ("1", "0")]
        #expect(FingerprintParsers.physicalCores(topology: topology) == 3)
        #expect(FingerprintParsers.physicalCores(topology: []) == nil)
    }

    @Test func memInfoReadsKibibytes() throws {
        let text = """
            MemTotal:       16318668 kB
            MemFree:         1012036 kB
            MemAvailable:    9884452 kB
            Buffers:          420728 kB
            Cached:          8000000 kB
            """
        let memory = try #require(FingerprintParsers.memInfo(text))
        #expect(memory.total == 16_318_668 * 1024)
        #expect(memory.available == 9_884_452 * 1024)
    }

    @Test func memInfoWithoutMemAvailableEstimatesIt() throws {
        let memory = try #require(FingerprintParsers.memInfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n"))
        #expect(memory.available == 310 * 1024)
    }

    @Test(arguments: ["", "MemFree: 10 kB", "MemTotal: lots kB", "MemTotal: -5 kB", "MemTotal: 99999999999999999999 kB"])
    func memInfoWithoutAUsableTotalIsNil(text: String) {
        #expect(FingerprintParsers.memInfo(text) == nil)
    }

    @Test func loadAverageParsesThreeFigures() {
        #expect(FingerprintParsers.loadAverage("0.52 1.58 10.59 1/467 12345\n") == .init(one: 0.52, five: 1.58, fifteen: 10.59))
        #expect(FingerprintParsers.loadAverage("0.52 nan 0.1 1/2 3") == nil)
        #expect(FingerprintParsers.loadAverage("garbage") == nil)
        #expect(FingerprintParsers.loadAverage("") == nil)
    }

    @Test func osReleasePrefersThePrettyName() {
        #expect(FingerprintParsers.osRelease("NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n") == "Ubuntu 24.04.1 LTS")
        #expect(FingerprintParsers.osRelease("NAME=Alpine\nVERSION_ID=3.20.0\n") == "Alpine 3.20.0")
        #expect(FingerprintParsers.osRelease("# nothing\n") == nil)
    }

    @Test func nvidiaSMIListsEveryGPU() {
        let output = """
            0, NVIDIA GeForce RTX 4090, 24564, 1024, 37
            1, NVIDIA A100-SXM4-40GB, 40960, [N/A], [Not Supported]

            """
        let result = FingerprintParsers.nvidiaSMI(output)
        #expect(result.problems.isEmpty)
        #expect(result.gpus == [
            Fingerprint.GPU(index: 0, vendor: "nvidia", model: "NVIDIA GeForce RTX 4090", memoryTotalBytes: 24564 << 20,
                            memoryUsedBytes: 1024 << 20, utilizationPercent: 37),
            Fingerprint.GPU(index: 1, vendor: "nvidia", model: "NVIDIA A100-SXM4-40GB", memoryTotalBytes: 40960 << 20),
        ])
    }

    @Test func nvidiaSMIKeepsACommaInTheNameAndSkipsWarnings() {
        let output = """
            WARNING: infoROM is corrupted at gpu 0000:01:00.0
            0, Tesla K80, rev 2, 11441, 0, 0
            """
        let result = FingerprintParsers.nvidiaSMI(output)
        #expect(result.gpus.map(\.model) == ["Tesla K80, rev 2"])
        #expect(result.problems.count == 1)
        #expect(result.problems.first?.contains("line 1") == true)
    }

    @Test(arguments: [
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "zero, RTX, 1, 2, 3",
        "0, , 1024, 0, 0",
        "0, RTX, lots, 0, 0",
        "-1, RTX, 1024, 0, 0",
        "0, RT\u{1}X, 1024, 0, 0",
        "\u{FF}\u{FE}\u{0}\u{0}",
        "",
    ])
    func nvidiaSMIGarbageIsNoGPU(output: String) {
        #expect(FingerprintParsers.nvidiaSMI(output).gpus.isEmpty)
    }

    @Test func aRepeatedGPUIndexIsNotCountedTwice() {
        let result = FingerprintParsers.nvidiaSMI("0, RTX, 1024, 0, 0\n0, RTX, 1024, 0, 0\n")
        #expect(result.gpus.count == 1)
        #expect(result.problems.count == 1)
    }

    /// A directory holding a fake `nvidia-smi` that prints `output` and exits with `status`.
    static func fakeNvidiaSMI(output: String, status: Int32 = 0, sleepSeconds: Int = 0) throws -> String {
        var template = Array("/tmp/lc-smi-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let script = "#!/bin/sh\n\(sleepSeconds > 0 ? "sleep \(sleepSeconds)\n" : "")printf '%s' '\(output)'\nexit \(status)\n"
        let path = "\(directory)/nvidia-smi"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return directory
    }

    @Test func detectRunsNvidiaSMIFromPath() throws {
        let directory = try Self.fakeNvidiaSMI(output: "0, NVIDIA Test GPU, 8192, 512, 12\n")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(Fingerprint.findExecutable("nvidia-smi", path: "/nonexistent:\(directory)") == "\(directory)/nvidia-smi")
        var fingerprint = Fingerprint.detect(benchmark: false, environment: ["PATH": directory])
        #expect(fingerprint.gpus == [Fingerprint.GPU(index: 0, vendor: "nvidia", model: "NVIDIA Test GPU", memoryTotalBytes: 8192 << 20,
                                                     memoryUsedBytes: 512 << 20, utilizationPercent: 12)])
        let capabilities = fingerprint.capabilityValues
        #expect(capabilities["gpu"] == "true")
        #expect(capabilities["gpu.count"] == "1")
        #expect(capabilities["gpu.model"] == "NVIDIA Test GPU")
        #expect(capabilities["gpu.memory"] == String(8192 << 20))
        #expect(capabilities["gpu.0.utilization"] == "12")

        // A refresh reads the figures again; the GPU stays.
        try "#!/bin/sh\necho '0, NVIDIA Test GPU, 8192, 4096, 99'\n".write(toFile: "\(directory)/nvidia-smi", atomically: true, encoding: .utf8)
        chmod("\(directory)/nvidia-smi", 0o755)
        fingerprint.refreshDynamic(environment: ["PATH": directory])
        #expect(fingerprint.gpus.first?.memoryUsedBytes == 4096 << 20)
        #expect(fingerprint.dynamicCapabilityValues["gpu.0.utilization"] == "99")
    }

    @Test(arguments: [(output: "garbage", status: Int32(0)), (output: "0, RTX, 1024, 0, 0", status: Int32(9))])
    func aFailingOrGarbageNvidiaSMIIsNoGPUWithAReason(output: String, status: Int32) throws {
        let directory = try Self.fakeNvidiaSMI(output: output, status: status)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fingerprint = Fingerprint.detect(benchmark: false, environment: ["PATH": directory])
        #if !canImport(Metal)
        #expect(fingerprint.gpus.isEmpty)
        #expect(fingerprint.capabilityValues["gpu"] == "false")
        #endif
        #expect(fingerprint.notes.contains { $0.hasPrefix("no NVIDIA GPU:") && $0.contains("nvidia-smi") }, "\(fingerprint.notes)")
    }

    @Test func aHangingNvidiaSMIIsKilled() throws {
        let directory = try Self.fakeNvidiaSMI(output: "0, RTX, 1024, 0, 0", sleepSeconds: 30)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let started = ContinuousClock.now
        switch ToolRun.run("\(directory)/nvidia-smi", arguments: [], timeout: .milliseconds(300)) {
        case .success: Issue.record("a tool that sleeps 30 s answered")
        case .failure(let failure): #expect(failure.reason.contains("did not answer"))
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func theSpeedBenchmarkIsBounded() {
        let started = ContinuousClock.now
        let speed = SpeedBenchmark.run(target: .seconds(10))
        #expect(ContinuousClock.now - started < .milliseconds(1000))
        #expect(speed.value > 0)
        #expect(speed.unit == "MB/s")
        #expect(speed.durationMs <= 400)
    }

    static let sample = Fingerprint(
        host: "lab-1", os: .init(name: "linux", version: "Debian GNU/Linux 12 (bookworm)", kernel: "6.1.0-18-amd64"),
        arch: "x86_64", cpu: .init(model: "AMD EPYC 7302", physicalCores: 16, logicalCores: 32),
        memory: .init(totalBytes: 64 << 30, availableBytes: 60 << 30), load: .init(one: 0.5, five: 0.25, fifteen: 0.125),
        disk: .init(path: "/srv", freeBytes: 1 << 40),
        gpus: [Fingerprint.GPU(index: 0, vendor: "nvidia", model: "RTX", memoryTotalBytes: 1 << 30, memoryUsedBytes: 0, utilizationPercent: 0)],
        speed: .init(value: 1234.5, unit: "MB/s", benchmark: SpeedBenchmark.name, durationMs: 100),
        labels: ["zone": "lab"], notes: [])

    @Test func jsonUsesSnakeCaseAndRoundTrips() throws {
        let data = try Self.sample.jsonData()
        let text = String(decoding: data, as: UTF8.self)
        for key in ["\"physical_cores\"", "\"total_bytes\"", "\"memory_total_bytes\"", "\"utilization_percent\"", "\"schema\" : 1"] {
            #expect(text.contains(key), "\(key) missing from \(text)")
        }
        #expect(try Fingerprint(json: data) == Self.sample)
    }

    @Test func capabilitiesKeepTheKeysPlacementReads() {
        let values = Self.sample.capabilityValues
        #expect(values["arch"] == "x86_64")
        #expect(values["os"] == "linux")
        #expect(values["cores"] == "32")
        #expect(values["cpu.physical-cores"] == "16")
        #expect(values["memory"] == String(64 << 30))
        #expect(values["cpu.model"] == "AMD EPYC 7302")
        #expect(values["speed"] == "1234.5")
        #expect(values["load.1"] == "0.50")
        #expect(values["label.zone"] == "lab")
        #expect(values["gpu"] == "true")
        var requirements = Requirements()
        requirements.gpu = true
        requirements.labels = ["zone": "lab"]
        #expect(requirements.unmetReason(Capabilities(values)) == nil)
    }

    @Test func aGPULabelOverridesDetection() {
        var hidden = Self.sample
        hidden.labels = ["gpu": "false"]
        #expect(hidden.capabilityValues["gpu"] == "false")
        var claimed = Self.sample
        claimed.gpus = []
        claimed.labels = ["gpu": "metal"]
        #expect(claimed.capabilityValues["gpu"] == "true")
        #expect(claimed.capabilityValues["gpu.count"] == "0")
    }

    @Test func onlyChangingFactsAreDynamic() {
        for name in ["memory.available", "load.1", "load.15", "disk.free", "gpu.0.utilization", "gpu.12.memory.used"] {
            #expect(Fingerprint.isDynamicCapability(name), "\(name)")
        }
        for name in ["memory", "gpu", "gpu.count", "gpu.0.model", "gpu.x.utilization", "arch", "label.zone", "credit", "node"] {
            #expect(!Fingerprint.isDynamicCapability(name), "\(name)")
        }
        #expect(Self.sample.dynamicCapabilityValues.keys.allSatisfy(Fingerprint.isDynamicCapability))
    }

    @Test func theCapabilitiesFrameIsBounded() throws {
        var values = Self.sample.capabilityValues
        values["protocol"] = MDP.lanComputeProtocol
        values["node"] = "n"
        values["credit"] = "8"
        values["label.note"] = String(repeating: "é", count: 1000)
        for index in 0..<64 { values["gpu.\(index).model"] = String(repeating: "G", count: 200) }
        let (bounded, trimmed) = Capabilities(values).bounded(toBytes: 4096, valueBytes: 256)
        #expect(bounded.encoded().count <= 4096)
        #expect(bounded.encodedCount == bounded.encoded().count)
        #expect(bounded["label.note"]?.utf8.count == 256)
        #expect(bounded["label.zone"] == "lab", "labels go last")
        #expect(bounded["gpu.63.model"] == nil && trimmed.contains("gpu.63.model"))
        for name in ["protocol", "node", "credit", "arch", "os", "cores", "memory", "gpu"] { #expect(bounded[name] != nil) }
        #expect(try Capabilities(decoding: bounded.encoded()) == bounded)
        #expect(Capabilities(["a": "b"]).bounded(toBytes: 4096, valueBytes: 256).trimmed.isEmpty)
    }

    @Test func aWorkersCapabilitiesFitTheLimit() {
        let capabilities = NodeInfo.capabilities(node: "n", labels: ["zone": "lab"], credit: 4, batch: 2)
        #expect(capabilities.encoded().count <= NodeInfo.capabilitiesLimit)
        #expect(capabilities.isLANCompute)
        #expect(capabilities["gpu.count"] != nil)
        #expect(capabilities["speed.unit"] == "MB/s")
        #expect(capabilities.labels == ["zone": "lab"])
    }
}
