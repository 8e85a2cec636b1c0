// The oldest libzmq the engine runs with, checked once when a command starts.

import ZeroMQ

/// libzmq before 4.3.3 has flaws any peer that reaches a port can use: 4.3.2 fixed a stack overflow
/// in the CURVE handshake (CVE-2019-13132); 4.3.3 fixed unauthenticated peers exhausting a CURVE
/// server's memory before the handshake ends (CVE-2020-15166) and memory-safety bugs on malformed
/// ZMTP input. The broker's own limits (handshake interval, message size) assume those are gone.
public enum LibraryRequirement {
    public static let minimum = (major: 4, minor: 3, patch: 3)

    /// Nil when `version` is at least ``minimum``, else the LC2085 error naming both versions.
    public static func problem(version: (major: Int, minor: Int, patch: Int) = ZMQLibrary.version) -> RuntimeError? {
        let found = [version.major, version.minor, version.patch]
        let needed = [minimum.major, minimum.minor, minimum.patch]
        guard found.lexicographicallyPrecedes(needed) else { return nil }
        return RuntimeError(
            .libzmqTooOld,
            "libzmq \(found.map(String.init).joined(separator: ".")) is older than \(needed.map(String.init).joined(separator: ".")), which this program needs to bound what a peer can make it do; install libzmq 4.3.3 or later")
    }
}
