// The one rule for the files the broker writes or removes (sink, dead letters): regular files of ours, nothing else.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens, replaces and removes the broker's output files without ever touching what is not one.
///
/// A path given as `--dead-letter` or as a file sink may name anything: a device (`/dev/sda`), a
/// directory, a symbolic link to a file elsewhere, another user's file. The broker writes, cuts or
/// removes a path only if it does not exist yet or is a regular file owned by the user it runs as;
/// a symbolic link is never followed (`O_NOFOLLOW`), and what was opened is checked again (`fstat`),
/// so a swap between the check and the open gains nothing.
public enum OutputFiles {
    public enum Mode: Sendable {
        /// Create or empty the file.
        case replace
        /// Create the file or append to it.
        case append
        /// Open an existing file (or create it) for reading and writing, without emptying it.
        case update
    }

    /// Nil when `path` may be written or removed by the broker, else why not, in a few words
    /// ("is a character device, not a regular file").
    public static func problem(_ path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            return errno == ENOENT ? nil : "cannot be examined: \(String(cString: strerror(errno)))"
        }
        return problem(info)
    }

    private static func problem(_ info: stat) -> String? {
        switch info.st_mode & mode_t(S_IFMT) {
        case mode_t(S_IFREG):
            return info.st_uid == geteuid() ? nil : "is a regular file owned by another user (uid \(info.st_uid))"
        case mode_t(S_IFLNK): return "is a symbolic link; give the path of the file itself"
        case mode_t(S_IFDIR): return "is a directory, not a regular file"
        case mode_t(S_IFCHR): return "is a character device, not a regular file"
        case mode_t(S_IFBLK): return "is a block device, not a regular file"
        case mode_t(S_IFIFO): return "is a named pipe, not a regular file"
        case mode_t(S_IFSOCK): return "is a socket, not a regular file"
        default: return "is not a regular file"
        }
    }

    /// Opens `path` as a stdio stream; throws the reason (``problem(_:)`` or the C error) as text.
    public static func openFile(_ path: String, _ mode: Mode) throws(OutputFileError) -> UnsafeMutablePointer<FILE> {
        if let problem = problem(path) { throw OutputFileError(path: path, reason: problem) }
        var flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        switch mode {
        case .replace: flags |= O_TRUNC
        case .append: flags |= O_APPEND
        case .update: flags = (flags & ~O_WRONLY) | O_RDWR
        }
        // O_NONBLOCK: opening a FIFO swapped in after the check must not block; it is refused below.
        let descriptor = open(path, flags | O_NONBLOCK, 0o644)
        guard descriptor >= 0 else { throw OutputFileError(path: path, reason: String(cString: strerror(errno))) }
        var info = stat()
        if fstat(descriptor, &info) != 0 || problem(info) != nil {
            let reason = problem(info) ?? String(cString: strerror(errno))
            close(descriptor)
            throw OutputFileError(path: path, reason: reason)
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        guard let file = fdopen(descriptor, mode == .update ? "r+b" : (mode == .append ? "ab" : "wb")) else {
            close(descriptor)
            throw OutputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        return file
    }

    /// Removes `path` if it is a regular file of ours; anything else stays, and the reason is thrown.
    public static func remove(_ path: String) throws(OutputFileError) {
        if let problem = problem(path) { throw OutputFileError(path: path, reason: problem) }
        if unlink(path) != 0 && errno != ENOENT { throw OutputFileError(path: path, reason: String(cString: strerror(errno))) }
    }
}

/// Why an output file was not opened or removed.
public struct OutputFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path) \(reason)" }
}
