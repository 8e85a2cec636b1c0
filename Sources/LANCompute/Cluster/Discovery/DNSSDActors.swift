// The DNS-SD announcer and browser: one thread each, driving dns_sd.h through the system's mDNS daemon.

import Foundation
import Logging
import Synchronization

/// Registers `_lancompute._tcp` for one broker until stopped (deallocating the registration
/// withdraws the record). The first call may block for the daemon's D-Bus timeout (~25 s when
/// the daemon hangs): it runs on this actor's thread, and the owner waits only ``outcome(within:)``.
final class DNSSDAnnouncer: Sendable {
    enum Outcome: Equatable, Sendable {
        case pending
        case registered(name: String)
        case failed(DNSServiceError)
    }

    private let state = LockedValue<Outcome>(.pending)
    private let thread: DiscoveryThread

    init(announcement: BrokerAnnouncement, instanceName: String, interface: String?, logger: Logger) {
        let state = self.state
        thread = DiscoveryThread(name: "lancompute-dnssd-announce") { thread in
            let api: DNSSD
            switch DNSSD.shared {
            case .success(let loaded): api = loaded
            case .failure(let error):
                state.withLock { $0 = .failed(error) }
                return
            }
            let reply = ReplyBox { outcome in state.withLock { $0 = outcome } }
            var reference: DNSSD.ServiceRef?
            let txt = announcement.txtRecord
            let code = txt.withUnsafeBytes { bytes in
                api.register(&reference, 0, DNSSD.interfaceIndex(interface), instanceName, DNSSD.serviceType, nil, nil,
                             announcement.dispatchPort.bigEndian, UInt16(bytes.count), bytes.baseAddress,
                             { _, _, error, name, _, _, context in
                                 let box = Unmanaged<ReplyBox>.fromOpaque(context!).takeUnretainedValue()
                                 box.deliver(error == 0 ? .registered(name: name.map { String(cString: $0) } ?? "")
                                                        : .failed(DNSServiceError(rawValue: error)))
                             }, Unmanaged.passUnretained(reply).toOpaque())
            }
            guard code == 0, let reference else {
                state.withLock { $0 = .failed(DNSServiceError(rawValue: code)) }
                return
            }
            defer { api.deallocate(reference) }
            let descriptor = api.socketDescriptor(reference)
            while !thread.isStopRequested {
                guard !thread.poll([descriptor], timeout: .seconds(1)).isEmpty else { continue }
                let result = api.processResult(reference)
                if result != 0 {
                    logger.warning("the mDNS daemon dropped the registration: \(DNSServiceError(rawValue: result))")
                    state.withLock { $0 = .failed(DNSServiceError(rawValue: result)) }
                    return
                }
            }
            withExtendedLifetime(reply) {}
        }
    }

    var outcome: Outcome { state.withLock { $0 } }

    /// The outcome once it is known, or `.pending` after `limit`.
    func outcome(within limit: Duration) -> Outcome {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let current = outcome
            if current != .pending { return current }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return outcome
    }

    /// Withdraws the record; returns false when the thread is stuck in a daemon call and was left behind.
    @discardableResult
    func stop() -> Bool { thread.stop(within: .seconds(1)) }
}

/// Carries a C callback back to Swift; owned by the actor's thread for as long as the C side may call it.
private final class ReplyBox: @unchecked Sendable {
    // @unchecked Sendable: created and called only on the actor's thread (dns_sd.h calls back from
    // DNSServiceProcessResult, which that thread alone calls); `deliver` only takes a lock.
    let deliver: (DNSSDAnnouncer.Outcome) -> Void
    init(_ deliver: @escaping (DNSSDAnnouncer.Outcome) -> Void) { self.deliver = deliver }
}

/// What a DNS-SD browse reports.
enum DNSSDBrowseEvent: Sendable {
    case found(DiscoveredBroker, service: String)
    case lost(service: String)
    case failed(DNSServiceError)
}

/// Browses `_lancompute._tcp`, resolves each service (SRV + TXT) and its host's A record, and
/// reports brokers of `cluster`. Avahi's library lacks `DNSServiceGetAddrInfo`, so the address
/// comes from `DNSServiceQueryRecord` (type A) rather than from the host's name service.
final class DNSSDBrowser: Sendable {
    private let thread: DiscoveryThread

    init(cluster: String, interface: String?, logger: Logger, onEvent: @escaping @Sendable (DNSSDBrowseEvent) -> Void) {
        thread = DiscoveryThread(name: "lancompute-dnssd-browse") { thread in
            switch DNSSD.shared {
            case .success(let api):
                let session = BrowseSession(api: api, cluster: cluster, interfaceIndex: DNSSD.interfaceIndex(interface),
                                            logger: logger, onEvent: onEvent)
                session.run(on: thread)
            case .failure(let error):
                onEvent(.failed(error))
            }
        }
    }

    @discardableResult
    func stop() -> Bool { thread.stop(within: .seconds(1)) }
}

/// The browse and its in-progress lookups; lives and dies on the browser's thread.
private final class BrowseSession {
    /// One resolve then address query for a service the browse found.
    final class Lookup {
        unowned let session: BrowseSession
        let service: String
        let interfaceIndex: UInt32
        let started = ContinuousClock.now
        var reference: DNSSD.ServiceRef?
        var announcement: BrokerAnnouncement?
        var finished = false
        init(session: BrowseSession, service: String, interfaceIndex: UInt32) {
            self.session = session
            self.service = service
            self.interfaceIndex = interfaceIndex
        }
    }

    let api: DNSSD
    let cluster: String
    let interfaceIndex: UInt32
    let logger: Logger
    let onEvent: @Sendable (DNSSDBrowseEvent) -> Void
    var lookups: [Lookup] = []
    var browseFailed: Int32 = 0

    init(api: DNSSD, cluster: String, interfaceIndex: UInt32, logger: Logger, onEvent: @escaping @Sendable (DNSSDBrowseEvent) -> Void) {
        self.api = api
        self.cluster = cluster
        self.interfaceIndex = interfaceIndex
        self.logger = logger
        self.onEvent = onEvent
    }

    func run(on thread: DiscoveryThread) {
        var browse: DNSSD.ServiceRef?
        let code = api.browse(&browse, 0, interfaceIndex, DNSSD.serviceType, nil, { _, flags, index, error, name, _, domain, context in
            let session = Unmanaged<BrowseSession>.fromOpaque(context!).takeUnretainedValue()
            guard error == 0, let name else {
                session.browseFailed = error
                return
            }
            session.browsed(service: String(cString: name), domain: domain.map { String(cString: $0) } ?? "local.",
                            added: flags & DNSSD.flagAdd != 0, interfaceIndex: index)
        }, Unmanaged.passUnretained(self).toOpaque())
        guard code == 0, let browse else {
            onEvent(.failed(DNSServiceError(rawValue: code)))
            return
        }
        defer {
            for lookup in lookups where lookup.reference != nil { api.deallocate(lookup.reference) }
            api.deallocate(browse)
        }
        while !thread.isStopRequested {
            let active = lookups.filter { $0.reference != nil }
            let descriptors = [api.socketDescriptor(browse)] + active.map { api.socketDescriptor($0.reference) }
            for index in thread.poll(descriptors, timeout: .milliseconds(500)) {
                let reference = index == 0 ? browse : active[index - 1].reference
                let result = api.processResult(reference)
                if result != 0 && index == 0 { browseFailed = result }
                if result != 0 && index > 0 { active[index - 1].finished = true }
            }
            if browseFailed != 0 {
                onEvent(.failed(DNSServiceError(rawValue: browseFailed)))
                return
            }
            // Deallocated here, never inside their own callback; a lookup that hangs is given up after 5 s.
            let now = ContinuousClock.now
            for lookup in lookups where lookup.finished || now - lookup.started > .seconds(5) {
                if let reference = lookup.reference { api.deallocate(reference) }
                lookup.reference = nil
            }
            lookups.removeAll { $0.reference == nil }
        }
    }

    func browsed(service: String, domain: String, added: Bool, interfaceIndex index: UInt32) {
        guard added else {
            onEvent(.lost(service: service))
            return
        }
        let lookup = Lookup(session: self, service: service, interfaceIndex: index)
        let code = api.resolve(&lookup.reference, 0, index, service, DNSSD.serviceType, domain,
                               { _, _, _, error, _, host, _, length, txt, context in
            let lookup = Unmanaged<Lookup>.fromOpaque(context!).takeUnretainedValue()
            lookup.session.resolved(lookup, error: error, host: host.map { String(cString: $0) },
                                    txt: txt.map { Array(UnsafeBufferPointer(start: $0, count: Int(length))) } ?? [])
        }, Unmanaged.passUnretained(lookup).toOpaque())
        if code == 0 {
            lookups.append(lookup)
        } else {
            logger.debug("cannot resolve DNS-SD service \(service): \(DNSServiceError(rawValue: code))")
        }
    }

    func resolved(_ lookup: Lookup, error: Int32, host: String?, txt: [UInt8]) {
        lookup.finished = true
        guard error == 0, let host else { return }
        guard let announcement = BrokerAnnouncement(txtRecord: txt) else {
            logger.debug("DNS-SD service \(lookup.service) is not an announcement this version understands")
            return
        }
        guard announcement.cluster == cluster else { return }
        // The address: a second lookup on the same thread, kept beside the first.
        let query = Lookup(session: self, service: lookup.service, interfaceIndex: lookup.interfaceIndex)
        query.announcement = announcement
        let code = api.queryRecord(&query.reference, 0, lookup.interfaceIndex, host, 1 /* A */, 1 /* IN */,
                                   { _, _, _, error, _, _, _, length, data, _, context in
            let query = Unmanaged<Lookup>.fromOpaque(context!).takeUnretainedValue()
            query.finished = true
            guard error == 0, length == 4, let data, let announcement = query.announcement else { return }
            let bytes = data.assumingMemoryBound(to: UInt8.self)
            let address = "\(bytes[0]).\(bytes[1]).\(bytes[2]).\(bytes[3])"
            query.session.onEvent(.found(DiscoveredBroker(announcement: announcement, host: address, mechanism: .dnssd),
                                         service: query.service))
        }, Unmanaged.passUnretained(query).toOpaque())
        if code == 0 { lookups.append(query) }
    }
}

@available(*, unavailable)
extension BrowseSession: Sendable {}
