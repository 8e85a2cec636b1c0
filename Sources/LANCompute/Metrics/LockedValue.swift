// A value shared between threads behind a lock (Mutex needs macOS 15; the package supports 13).

import Foundation

/// A value guarded by a lock; every access goes through ``withLock(_:)``.
final class LockedValue<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only read or written while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value { withLock { $0 } }
}
