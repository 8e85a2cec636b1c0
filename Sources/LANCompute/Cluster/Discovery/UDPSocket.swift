// The one wrapper for the beacon's UDP socket calls: errno read at once, EINTR retried, would-block as nil.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a beacon socket could not be set up; the C call and errno name it.
public struct DiscoverySocketError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// A non-blocking IPv4 UDP socket, closed once on deinit. Used by one thread only.
final class UDPSocket {
    let descriptor: Int32

    init(broadcast: Bool, bindPort: UInt16?) throws(DiscoverySocketError) {
        #if canImport(Glibc)
        let type = Int32(SOCK_DGRAM.rawValue)
        #else
        let type = SOCK_DGRAM
        #endif
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw DiscoverySocketError(call: "socket", errno: errno) }
        descriptor = fd
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // an exec stage must not inherit the beacon port
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var one: Int32 = 1
        if broadcast, setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw DiscoverySocketError(call: "setsockopt(SO_BROADCAST)", errno: errno)
        }
        guard let bindPort else { return }
        // Several listeners on one machine (a worker and `top`) must all see each broadcast:
        // SO_REUSEADDR does that on Linux; BSD kernels need SO_REUSEPORT for it.
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        var address = Self.address(0, port: bindPort)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 { throw DiscoverySocketError(call: "bind(UDP \(bindPort))", errno: errno) }
    }

    deinit { close(descriptor) }

    /// The port the socket is bound to (after binding port 0).
    var boundPort: UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return result == 0 ? UInt16(bigEndian: address.sin_port) : 0
    }

    /// Sends one datagram; the errno on failure (a down interface is not fatal to the sender).
    func send(_ bytes: [UInt8], to host: UInt32, port: UInt16) -> Int32? {
        var address = Self.address(host, port: port)
        while true {
            let sent = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(descriptor, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            if sent >= 0 { return nil }
            let code = errno
            if code == EINTR { continue }
            return code
        }
    }

    /// One datagram and its IPv4 source (host byte order), nil when none is waiting.
    func receive() -> (bytes: [UInt8], from: UInt32)? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(descriptor, raw.baseAddress, raw.count, 0, $0, &length)
                    }
                }
            }
            if count >= 0 { return (Array(buffer[0..<count]), UInt32(bigEndian: address.sin_addr.s_addr)) }
            if errno == EINTR { continue }
            return nil  // EAGAIN, or an error the next poll reports again
        }
    }

    private static func address(_ host: UInt32, port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = host.bigEndian
        return address
    }
}

@available(*, unavailable)
extension UDPSocket: Sendable {}
