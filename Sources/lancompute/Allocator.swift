// Which allocator serves this process's malloc: `lancompute doctor` prints it.

#if canImport(CMimalloc)
import CMimalloc
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum Allocator {
    /// On Linux the executable links mimalloc ahead of the C library, so its malloc is mimalloc's
    /// (Docs/performance.md, "mimalloc"). The check is a block from the C library's `malloc` that
    /// mimalloc says is its own, not only that the library is linked.
    static var report: String {
        #if canImport(CMimalloc)
        let version = Int(mi_version())  // major, then two digits: 209 is 2.0.9
        let name = "mimalloc \(version / 100).\(version % 100 / 10).\(version % 10)"
        guard let block = malloc(64) else { return "\(name), malloc failed" }
        defer { free(block) }
        // Another allocator wins with LD_PRELOAD, or when libc came first at link time: runs still work, at more CPU an item.
        return mi_is_in_heap_region(block)
            ? name : "\(name) linked, but malloc is another allocator's (LD_PRELOAD set, or libc linked first): runs work, at more CPU an item"
        #else
        return "the system's"
        #endif
    }
}
