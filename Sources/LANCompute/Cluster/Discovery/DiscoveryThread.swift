// A joinable thread with a wake pipe: the actor that each beacon and DNS-SD loop runs on.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One thread that owns its sockets and file descriptors for its whole life (czmq's zactor,
/// without a ZeroMQ pipe: these loops poll plain fds). The body polls ``wakeDescriptor`` with
/// its own descriptors and returns when ``isStopRequested``; ``stop(within:)`` wakes and joins it.
final class DiscoveryThread: Sendable {
    let name: String
    /// Readable once stop was requested; the body includes it in every `poll`.
    let wakeDescriptor: Int32
    private let wakeWriter: Int32
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let joined = Atomic<Bool>(false)

    /// Starts `body` on a new thread at once.
    init(name: String, body: @escaping @Sendable (DiscoveryThread) -> Void) {
        self.name = name
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }  // no pipe: the bodies still wake on their poll timeouts
        wakeDescriptor = fds[0]
        wakeWriter = fds[1]
        if wakeDescriptor >= 0 { _ = fcntl(wakeDescriptor, F_SETFL, fcntl(wakeDescriptor, F_GETFL) | O_NONBLOCK) }
        let thread = Thread { [self] in
            body(self)
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

    /// Asks the body to return and waits for it at most `limit`; true when it has returned.
    /// The bound exists for a body stuck in a C call (a hung mDNS daemon holds a DNS-SD call
    /// for about 25 s): the process must not wait that long to exit, and the thread touches
    /// nothing shared after its body returns.
    @discardableResult
    func stop(within limit: Duration) -> Bool {
        if !stopRequested.exchange(true, ordering: .acquiringAndReleasing), wakeWriter >= 0 {
            var byte: UInt8 = 1
            _ = write(wakeWriter, &byte, 1)
        }
        if joined.load(ordering: .acquiring) { return true }
        let millis = Int(limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000)
        guard finished.wait(timeout: .now() + .milliseconds(millis)) == .success else { return false }
        joined.store(true, ordering: .releasing)
        finished.signal()  // a second stop() returns at once too
        return true
    }

    /// Waits for the body to return (it stops on its own, e.g. after a failed start) without asking it to.
    func waitForExit(within limit: Duration) -> Bool {
        let millis = Int(limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000)
        guard finished.wait(timeout: .now() + .milliseconds(millis)) == .success else { return false }
        finished.signal()
        return true
    }

    /// `poll` on `descriptors` plus the wake pipe; the indices of the readable ones in `descriptors`.
    /// EINTR counts as a timeout; the caller checks ``isStopRequested`` after every call.
    func poll(_ descriptors: [Int32], timeout: Duration) -> [Int] {
        var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        entries.append(pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0))
        let millis = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let count = entries.withUnsafeMutableBufferPointer { systemPoll($0.baseAddress, nfds_t($0.count), millis) }
        guard count > 0 else { return [] }
        return descriptors.indices.filter { entries[$0].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 }
    }

    deinit {
        // Closed only here: the body, which polls the read end, has returned or holds `self`.
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
        if wakeWriter >= 0 { close(wakeWriter) }
    }
}

@inline(__always)
private func systemPoll(_ fds: UnsafeMutablePointer<pollfd>?, _ count: nfds_t, _ timeout: Int32) -> Int32 {
    poll(fds, count, timeout)
}
