// A plain TCP socket on 127.0.0.1 at a port the system picks, for tests that need a free port or a listener that speaks no ZeroMQ.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct LoopbackTCPSocket {
    let descriptor: Int32
    let port: Int

    /// Binds 127.0.0.1:0 (and listens when `listening`).
    init(listening: Bool) throws {
        descriptor = socket(AF_INET, Int32(streamSocketType), 0)
        try #require(descriptor >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let descriptor = descriptor
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && (!listening || listen(descriptor, 16) == 0)
                    && getsockname(descriptor, $0, &length) == 0
            }
        }
        if !bound { LoopbackTCPSocket.closeDescriptor(descriptor) }
        try #require(bound)
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Self.closeDescriptor(descriptor) }

    static func closeDescriptor(_ descriptor: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(descriptor)
        #else
        _ = Darwin.close(descriptor)
        #endif
    }
}

#if canImport(Glibc)
private let streamSocketType = SOCK_STREAM.rawValue
#else
private let streamSocketType = SOCK_STREAM
#endif
