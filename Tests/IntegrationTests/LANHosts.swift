// Simulated LAN hosts for tests: network namespaces on one bridge, optionally each with its own dbus and avahi-daemon.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `count` hosts `h1…hN` (network namespaces, each with `eth0` at 10.X.Y.N/24) plugged into one
/// bridge that lives in a namespace of its own, so the machine's own network is never touched.
/// Everything is named with a random suffix and removed by ``tearDown()`` (call it from a `defer`).
///
/// ```swift
/// let lan = try LANHosts(count: 3)
/// defer { lan.tearDown() }
/// try lan.startAvahi(on: 1, harness: harness)          // optional: an mDNS daemon on h1
/// try harness.start("broker", LANHosts.ip, lan.command(on: 1, [CLI.path, "broker", ...]))
/// ```
final class LANHosts {
    static let ip = "/usr/sbin/ip"
    static let avahiDaemon = "/usr/sbin/avahi-daemon"
    static let dbusDaemon = "/usr/bin/dbus-daemon"

    /// Linux, root, iproute2.
    static var available: Bool {
        #if os(Linux)
        return geteuid() == 0 && FileManager.default.isExecutableFile(atPath: ip)
        #else
        return false
        #endif
    }

    /// Also avahi-daemon, dbus-daemon and Avahi's dns_sd library (Debian: avahi-daemon dbus libavahi-compat-libdnssd-dev).
    static var avahiAvailable: Bool {
        guard available, FileManager.default.isExecutableFile(atPath: avahiDaemon),
              FileManager.default.isExecutableFile(atPath: dbusDaemon), let handle = dlopen("libdns_sd.so.1", RTLD_NOW) else { return false }
        dlclose(handle)
        return true
    }

    let suffix: String
    let subnet: String
    let count: Int
    private let bridgeNamespace: String
    /// Hosts whose /run is a private directory (those running avahi): their commands bind-mount it first.
    private var runDirectories: [Int: String] = [:]

    init(count: Int) throws {
        precondition((1...9).contains(count))
        suffix = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        subnet = "10.\(Int.random(in: 200...250)).\(Int.random(in: 1...250))"
        self.count = count
        bridgeNamespace = "lc-\(suffix)-sw"
        do {
            try Self.run(["netns", "add", bridgeNamespace])
            try Self.run(["-n", bridgeNamespace, "link", "add", "br0", "type", "bridge"])
            try Self.run(["-n", bridgeNamespace, "link", "set", "br0", "up"])
            for host in 1...count {
                let namespace = self.namespace(host)
                let port = "lc\(suffix.prefix(6))p\(host)"
                try Self.run(["netns", "add", namespace])
                try Self.run(["link", "add", port, "type", "veth", "peer", "name", "\(port)h"])
                try Self.run(["link", "set", port, "netns", bridgeNamespace])
                try Self.run(["link", "set", "\(port)h", "netns", namespace])
                try Self.run(["-n", bridgeNamespace, "link", "set", port, "master", "br0"])
                try Self.run(["-n", bridgeNamespace, "link", "set", port, "up"])
                try Self.run(["-n", namespace, "link", "set", "\(port)h", "name", "eth0"])
                try Self.run(["-n", namespace, "addr", "add", "\(address(host))/24", "brd", "+", "dev", "eth0"])
                try Self.run(["-n", namespace, "link", "set", "eth0", "up"])
                try Self.run(["-n", namespace, "link", "set", "lo", "up"])
            }
        } catch {
            tearDown()
            throw error
        }
    }

    func namespace(_ host: Int) -> String { "lc-\(suffix)-h\(host)" }
    func address(_ host: Int) -> String { "\(subnet).\(host)" }

    /// The `ip` arguments that run `argv` on `host` (with its private /run and bus if it runs avahi).
    func command(on host: Int, _ argv: [String]) -> [String] {
        guard let run = runDirectories[host] else { return ["netns", "exec", namespace(host)] + argv }
        // `ip netns exec` gives the command its own mount namespace: the bind mount stays inside it.
        return ["netns", "exec", namespace(host), "/bin/sh", "-c",
                "mount -n --bind \"$0\" /run && exec env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket \"$@\"",
                run] + argv
    }

    /// Starts a dbus-daemon and an avahi-daemon on `host` and waits until avahi is serving
    /// (about 1 s). From then on ``command(on:_:)`` runs commands against that host's daemons.
    func startAvahi(on host: Int, harness: ProcessHarness) throws {
        let root = harness.path("h\(host)")
        let run = "\(root)/run"
        for directory in ["\(run)/dbus", "\(run)/avahi-daemon"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>system</type>
              <listen>unix:path=/run/dbus/system_bus_socket</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_destination="*" eavesdrop="true"/>
                <allow receive_sender="*"/>
              </policy>
            </busconfig>
            """.write(toFile: "\(root)/dbus.conf", atomically: true, encoding: .utf8)
        try """
            [server]
            host-name=h\(host)
            use-ipv4=yes
            use-ipv6=no
            allow-interfaces=eth0
            enable-dbus=yes
            ratelimit-interval-usec=1000000
            ratelimit-burst=1000
            [wide-area]
            enable-wide-area=no
            [publish]
            publish-hinfo=no
            publish-workstation=no
            [reflector]
            [rlimits]
            """.write(toFile: "\(root)/avahi.conf", atomically: true, encoding: .utf8)
        runDirectories[host] = run
        try harness.start("dbus-h\(host)", Self.ip, command(on: host, [
            Self.dbusDaemon, "--config-file=\(root)/dbus.conf", "--nofork", "--nopidfile", "--nosyslog"]))
        let socket = "\(run)/dbus/system_bus_socket"
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: socket) && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        guard FileManager.default.fileExists(atPath: socket) else { throw HarnessError("dbus-daemon on h\(host) made no socket") }
        // avahi-daemon closes every inherited descriptor at start-up, including the one Foundation's
        // Process watches to learn that a child exited: Foundation then blocks in waitpid for it and
        // stops noticing any other child's exit. A shell parent keeps that descriptor open and
        // forwards SIGTERM.
        let avahi = try harness.start("avahi-h\(host)", Self.ip, command(on: host, [
            "/bin/sh", "-c", "trap 'kill $child; wait $child' TERM; \"$@\" & child=$!; wait $child", "avahi",
            Self.avahiDaemon, "--no-drop-root", "--no-chroot", "--no-rlimits", "--debug", "-f", "\(root)/avahi.conf"]))
        guard avahi.waitForErrorContaining("Server startup complete", timeout: .seconds(15)) else {
            throw HarnessError("avahi-daemon on h\(host) did not start:\n\(avahi.transcript)")
        }
    }

    /// Kills what still runs in the namespaces (only processes these hosts contain), then removes
    /// them; the veth pairs go with them.
    func tearDown() {
        for host in 1...count {
            for pid in (try? Self.output(["netns", "pids", namespace(host)]))?.split(whereSeparator: \.isWhitespace) ?? [] {
                if let number = Int32(pid) { kill(number, SIGKILL) }
            }
            try? Self.run(["netns", "del", namespace(host)])
        }
        try? Self.run(["netns", "del", bridgeNamespace])
    }

    static func run(_ arguments: [String]) throws { _ = try output(arguments) }

    static func output(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let error = Pipe()
        let output = Pipe()
        process.standardError = error
        process.standardOutput = output
        try process.run()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        let message = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("ip \(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension ChildProcess {
    /// Waits until standard error contains `text` (a readiness line), or `timeout` passes.
    func waitForErrorContaining(_ text: String, timeout: Duration) -> Bool {
        wait(until: { standardError.contains(text) }, timeout: timeout)
    }
}
