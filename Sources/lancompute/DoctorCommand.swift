// `lancompute doctor`: what this machine offers LANCompute — libzmq, CURVE, interfaces, capabilities.

import ArgumentParser
import Foundation
import LANCompute
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this machine: libzmq version, CURVE support, network interfaces, worker capabilities."
    )

    func run() throws {
        print("lancompute \(LANComputeCommand.version)")
        print("libzmq      \(ZMQLibrary.versionString)")
        print("CURVE       \(ZMQLibrary.has("curve") ? "available" : "missing (libzmq built without libsodium: encryption unavailable)")")
        print("IPC         \(ZMQLibrary.has("ipc") ? "available" : "missing")")
        print("host        \(NodeInfo.hostName)")
        print("arch/os     \(NodeInfo.arch)/\(NodeInfo.os)")
        print("cores       \(NodeInfo.cores)")
        print(String(format: "memory      %.1f GiB", Double(NodeInfo.memory) / 1_073_741_824))
        print("gpu         \(NodeInfo.hasGPU ? "yes" : "none found")")
        print("interfaces:")
        for (name, address) in Self.interfaces() { print("  \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(address)") }
        // A loopback round trip proves the library works here, not just that it links.
        let pull = try Socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try Socket(.push)
        try push.connect(try pull.lastEndpoint)
        try push.send("ping")
        try pull.set(.receiveTimeout, .seconds(2))
        let reply = try pull.receiveString()
        print("loopback    \(reply == "ping" ? "ok" : "FAILED") (\(try pull.lastEndpoint))")
    }

    /// IPv4 and IPv6 addresses of the machine's interfaces.
    static func interfaces() -> [(String, String)] {
        var result: [(String, String)] = []
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0 else { return result }
        defer { freeifaddrs(first) }
        var cursor = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let name = String(cString: entry.pointee.ifa_name)
            result.append((name, String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        return result
    }
}
