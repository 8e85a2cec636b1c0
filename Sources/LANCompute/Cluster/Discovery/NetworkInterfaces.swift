// The machine's IPv4 interfaces (name, address, netmask, broadcast), for beacons and `--interface`.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One IPv4 address of one interface, in host byte order.
public struct IPv4Interface: Sendable, Equatable {
    public var name: String
    public var address: UInt32
    public var netmask: UInt32
    /// Nil on interfaces that cannot broadcast (loopback, point-to-point links).
    public var broadcast: UInt32?
    public var isLoopback: Bool

    /// Whether `peer` (host byte order) is on this interface's subnet.
    public func contains(_ peer: UInt32) -> Bool { peer & netmask == address & netmask }

    /// Every IPv4 address of every interface that is up.
    public static func all() -> [IPv4Interface] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [IPv4Interface] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            let flags = Int32(bitPattern: entry.pointee.ifa_flags)
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                  flags & Int32(IFF_UP) != 0 else { continue }
            func ipv4(_ pointer: UnsafeMutablePointer<sockaddr>?) -> UInt32? {
                guard let pointer, pointer.pointee.sa_family == sa_family_t(AF_INET) else { return nil }
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            }
            #if canImport(Glibc)
            let broadcastPointer = entry.pointee.ifa_ifu.ifu_broadaddr
            #else
            let broadcastPointer = entry.pointee.ifa_dstaddr
            #endif
            let canBroadcast = flags & Int32(IFF_BROADCAST) != 0
            result.append(IPv4Interface(
                name: String(cString: entry.pointee.ifa_name), address: ipv4(address) ?? 0,
                netmask: ipv4(entry.pointee.ifa_netmask) ?? 0xFFFF_FFFF,
                broadcast: canBroadcast ? ipv4(broadcastPointer) : nil,
                isLoopback: flags & Int32(IFF_LOOPBACK) != 0))
        }
        return result
    }

    /// Dotted-quad text of a host-order address.
    public static func text(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xFF).\(address >> 8 & 0xFF).\(address & 0xFF)"
    }

    /// A dotted quad in host byte order, or nil.
    public static func parse(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }
}
