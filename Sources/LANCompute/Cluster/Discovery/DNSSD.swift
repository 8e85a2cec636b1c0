// The Bonjour dns_sd.h calls LANCompute uses, looked up at run time so no build or run needs Avahi.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `DNSServiceErrorType` codes that matter here (dns_sd.h).
public struct DNSServiceError: Error, RawRepresentable, Equatable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `kDNSServiceErr_Unknown`: what Avahi's library returns for every call when no daemon answers.
    public static let unknown = DNSServiceError(rawValue: -65537)
    /// `kDNSServiceErr_Unsupported`: flags or features Avahi's compatibility layer lacks.
    public static let unsupported = DNSServiceError(rawValue: -65544)
    /// `kDNSServiceErr_ServiceNotRunning`: no mDNSResponder (macOS).
    public static let serviceNotRunning = DNSServiceError(rawValue: -65563)
    /// Not a dns_sd.h code: the library itself could not be loaded.
    public static let libraryMissing = DNSServiceError(rawValue: 1)

    public var description: String {
        switch self {
        case .unknown: "no mDNS daemon answered (kDNSServiceErr_Unknown, -65537)"
        case .unsupported: "not supported by this DNS-SD library (kDNSServiceErr_Unsupported, -65544)"
        case .serviceNotRunning: "the mDNS daemon is not running (kDNSServiceErr_ServiceNotRunning, -65563)"
        case .libraryMissing: "no DNS-SD library (\(DNSSD.libraryName)) on this machine"
        default: "DNS-SD error \(rawValue)"
        }
    }
}

/// The dns_sd.h functions, resolved with `dlsym`. Their C signatures are stable since 2002
/// (Apple's `dns_sd.h`, mirrored by Avahi's `avahi-compat-libdns_sd`); the types below copy them.
struct DNSSD: @unchecked Sendable {
    // @unchecked Sendable: only immutable C function pointers, which any thread may call.

    typealias ServiceRef = OpaquePointer
    typealias Context = UnsafeMutableRawPointer

    /// `kDNSServiceFlagsMoreComing` and `kDNSServiceFlagsAdd`.
    static let flagMoreComing: UInt32 = 0x1
    static let flagAdd: UInt32 = 0x2
    static let serviceType = "_lancompute._tcp"

    typealias RegisterReply = @convention(c) (
        ServiceRef?, UInt32, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Context?) -> Void
    typealias BrowseReply = @convention(c) (
        ServiceRef?, UInt32, UInt32, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Context?) -> Void
    typealias ResolveReply = @convention(c) (
        ServiceRef?, UInt32, UInt32, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?, UInt16, UInt16,
        UnsafePointer<UInt8>?, Context?) -> Void
    typealias QueryRecordReply = @convention(c) (
        ServiceRef?, UInt32, UInt32, Int32, UnsafePointer<CChar>?, UInt16, UInt16, UInt16, UnsafeRawPointer?, UInt32,
        Context?) -> Void

    let register: @convention(c) (
        UnsafeMutablePointer<ServiceRef?>, UInt32, UInt32, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
        UnsafePointer<CChar>?, UnsafePointer<CChar>?, UInt16, UInt16, UnsafeRawPointer?, RegisterReply?, Context?) -> Int32
    let browse: @convention(c) (
        UnsafeMutablePointer<ServiceRef?>, UInt32, UInt32, UnsafePointer<CChar>?, UnsafePointer<CChar>?, BrowseReply?,
        Context?) -> Int32
    let resolve: @convention(c) (
        UnsafeMutablePointer<ServiceRef?>, UInt32, UInt32, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
        UnsafePointer<CChar>?, ResolveReply?, Context?) -> Int32
    let queryRecord: @convention(c) (
        UnsafeMutablePointer<ServiceRef?>, UInt32, UInt32, UnsafePointer<CChar>?, UInt16, UInt16, QueryRecordReply?,
        Context?) -> Int32
    let socketDescriptor: @convention(c) (ServiceRef?) -> Int32
    let processResult: @convention(c) (ServiceRef?) -> Int32
    let deallocate: @convention(c) (ServiceRef?) -> Void

    #if os(Linux)
    /// Avahi's compatibility library (Debian `libavahi-compat-libdnssd1`); its soname, so no -dev package is needed.
    static let libraryName = "libdns_sd.so.1"
    #else
    /// Part of libSystem on macOS (mDNSResponder's client side).
    static let libraryName = "/usr/lib/libSystem.B.dylib"
    #endif

    /// The library, loaded once per process; `.libraryMissing` where it is not installed.
    static let shared: Result<DNSSD, DNSServiceError> = load()

    private static func load() -> Result<DNSSD, DNSServiceError> {
        // Avahi prints a compatibility warning to standard error on first use unless told not to.
        setenv("AVAHI_COMPAT_NOWARN", "1", 0)
        guard let handle = dlopen(libraryName, RTLD_NOW | RTLD_LOCAL) else { return .failure(.libraryMissing) }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let register = symbol("DNSServiceRegister", as: type(of: DNSSD.placeholder.register)),
              let browse = symbol("DNSServiceBrowse", as: type(of: DNSSD.placeholder.browse)),
              let resolve = symbol("DNSServiceResolve", as: type(of: DNSSD.placeholder.resolve)),
              let queryRecord = symbol("DNSServiceQueryRecord", as: type(of: DNSSD.placeholder.queryRecord)),
              let socketDescriptor = symbol("DNSServiceRefSockFD", as: type(of: DNSSD.placeholder.socketDescriptor)),
              let processResult = symbol("DNSServiceProcessResult", as: type(of: DNSSD.placeholder.processResult)),
              let deallocate = symbol("DNSServiceRefDeallocate", as: type(of: DNSSD.placeholder.deallocate)) else {
            dlclose(handle)
            return .failure(.libraryMissing)
        }
        return .success(DNSSD(register: register, browse: browse, resolve: resolve, queryRecord: queryRecord,
                              socketDescriptor: socketDescriptor, processResult: processResult, deallocate: deallocate))
    }

    /// Only its field types are used, to spell the `dlsym` casts once.
    private static let placeholder = DNSSD(
        register: { _, _, _, _, _, _, _, _, _, _, _, _ in 0 }, browse: { _, _, _, _, _, _, _ in 0 },
        resolve: { _, _, _, _, _, _, _, _ in 0 }, queryRecord: { _, _, _, _, _, _, _, _ in 0 },
        socketDescriptor: { _ in -1 }, processResult: { _ in 0 }, deallocate: { _ in })

    /// The index DNS-SD takes for `interface` (0: every interface).
    static func interfaceIndex(_ interface: String?) -> UInt32 {
        guard let interface else { return 0 }
        return if_nametoindex(interface)
    }
}
