// Helpers shared by the binding's tests: unique endpoints and sockets that cannot block forever.

import Foundation
import ZeroMQ

/// An inproc endpoint no other test uses.
func uniqueInproc(_ name: String = #function) -> String {
    let cleaned = name.filter { $0.isLetter || $0.isNumber }
    return "inproc://test.\(cleaned).\(UUID().uuidString)"
}

/// A socket whose blocking receives and sends give up after `timeout`, so a broken test fails instead of hanging.
func makeSocket(_ type: SocketType, context: Context = .shared, timeout: Duration = .seconds(5)) throws -> Socket {
    let socket = try Socket(type, context: context)
    try socket.set(.receiveTimeout, timeout)
    try socket.set(.sendTimeout, timeout)
    return socket
}

/// A bound socket on tcp://127.0.0.1 with a port chosen by the system, and the endpoint it got.
func bindLoopback(_ type: SocketType, context: Context = .shared) throws -> (socket: Socket, endpoint: String) {
    let socket = try makeSocket(type, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    return (socket, try socket.lastEndpoint)
}

extension Array where Element == UInt8 {
    /// The UTF-8 bytes of `text`.
    init(text: String) { self = Array(text.utf8) }
}

/// `count` bytes in a pattern that shows truncation or misplaced data.
func patternBytes(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
    // Filled through a raw buffer: tests run unoptimised, and 32 MiB through `map` is slow there.
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        for index in 0..<count {
            buffer[index] = UInt8(truncatingIfNeeded: index &* 31 &+ Int(seed) &+ (index >> 8))
        }
        initialized = count
    }
}
