// Thin wrappers over the POSIX calls the exec handlers make on pipes: errno read at once, EINTR retried.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum PipeIO {
    enum ReadResult: Equatable {
        case bytes(Int)
        case endOfFile
        case wouldBlock
    }

    enum WriteResult: Equatable {
        case wrote(Int)
        case wouldBlock
        /// The reading end is closed (`EPIPE`): the child exited or closed its standard input.
        case brokenPipe
    }

    /// Duplicates `fd` with close-on-exec set, so that no other child inherits it.
    static func duplicate(_ fd: Int32) -> Int32 {
        while true {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            if copy >= 0 { return copy }
            if errno == EINTR { continue }
            return -1
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    static func close(_ fd: Int32) {
        // Not retried on EINTR: on Linux the descriptor is released even then.
        _ = closeDescriptor(fd)
    }

    /// Reads what is available. Errors other than "would block" end the stream, like end of file.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        while true {
            let count = readDescriptor(fd, buffer.baseAddress, buffer.count)
            if count > 0 { return .bytes(count) }
            if count == 0 { return .endOfFile }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .endOfFile
            }
        }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> WriteResult {
        while true {
            let count = writeDescriptor(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return .wrote(count) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .brokenPipe
            }
        }
    }

    /// Waits until one of `descriptors` is ready or `deadline` passes; returns false on time-out.
    static func poll(_ descriptors: inout [pollfd], until deadline: AttemptDeadline) -> Bool {
        while true {
            let timeout = deadline.remainingMilliseconds()
            let ready = descriptors.withUnsafeMutableBufferPointer { buffer in
                pollDescriptors(buffer.baseAddress, nfds_t(buffer.count), timeout)
            }
            if ready > 0 { return true }
            if ready == 0 {
                if deadline.hasPassed { return false }
                continue
            }
            if errno == EINTR { continue }
            return false
        }
    }
}

// The C functions under names that the wrappers above do not shadow.
private func readDescriptor(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

private func writeDescriptor(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}

private func closeDescriptor(_ fd: Int32) -> Int32 {
    close(fd)
}

private func pollDescriptors(_ descriptors: UnsafeMutablePointer<pollfd>?, _ count: nfds_t, _ timeout: Int32) -> Int32 {
    poll(descriptors, count, timeout)
}

/// When the current attempt must end; no instant means no limit.
struct AttemptDeadline {
    let instant: ContinuousClock.Instant?

    init(timeout: Duration?) {
        instant = timeout.map { ContinuousClock.now.advanced(by: $0) }
    }

    init(instant: ContinuousClock.Instant?) {
        self.instant = instant
    }

    static func after(_ duration: Duration) -> AttemptDeadline { AttemptDeadline(timeout: duration) }

    var hasPassed: Bool {
        guard let instant else { return false }
        return ContinuousClock.now >= instant
    }

    /// For `poll(2)`: -1 without a limit, otherwise the milliseconds left, rounded up, at least 0.
    func remainingMilliseconds() -> Int32 {
        guard let instant else { return -1 }
        let left = ContinuousClock.now.duration(to: instant)
        if left <= .zero { return 0 }
        let (seconds, attoseconds) = left.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }

    /// The earlier of this deadline and one `duration` from now.
    func capped(at duration: Duration) -> AttemptDeadline {
        let cap = ContinuousClock.now.advanced(by: duration)
        guard let instant else { return AttemptDeadline(instant: cap) }
        return AttemptDeadline(instant: min(instant, cap))
    }
}

extension Duration {
    /// A human spelling for messages: "250ms", "2s", "1.5s".
    var shortDescription: String {
        let (seconds, attoseconds) = components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(Double(milliseconds) / 1000)s"
    }
}
